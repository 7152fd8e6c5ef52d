//! The storage channel an event kind belongs to, from its `category:` prefix.

use std::fmt;

/// The storage channel of an event kind.
///
/// ```
/// use gapless_core::event::Channel;
///
/// assert_eq!(Channel::of("container-agent:tool:start"), Channel::ContainerAgent);
/// assert_eq!(Channel::of("something:new"), Channel::Default);
/// assert_eq!(Channel::TaskCreation.as_str(), "taskCreation");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    /// `plan:*`.
    Plan,
    /// `sandbox:*`.
    Sandbox,
    /// `task-creation:*`.
    TaskCreation,
    /// `container-agent:*`.
    ContainerAgent,
    /// `topology:*`.
    Topology,
    /// `terraform:*` (ephemeral in the original server; persisted here).
    Terraform,
    /// Every other kind.
    Default,
}

impl Channel {
    /// The channel of a kind, by its prefix up to the first `:`.
    pub fn of(kind: &str) -> Channel {
        match kind.split_once(':').map(|(prefix, _)| prefix) {
            Some("plan") => Channel::Plan,
            Some("sandbox") => Channel::Sandbox,
            Some("task-creation") => Channel::TaskCreation,
            Some("container-agent") => Channel::ContainerAgent,
            Some("topology") => Channel::Topology,
            Some("terraform") => Channel::Terraform,
            _ => Channel::Default,
        }
    }

    /// The channel's wire name (camelCase).
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Plan => "plan",
            Channel::Sandbox => "sandbox",
            Channel::TaskCreation => "taskCreation",
            Channel::ContainerAgent => "containerAgent",
            Channel::Topology => "topology",
            Channel::Terraform => "terraform",
            Channel::Default => "default",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Channel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

//! Native driver (reqwest + tokio) of the gapless resume state machine, a producer API and the `gapless` CLI.
//!
//! Not implemented yet: this crate is an empty member of the workspace so that the
//! layout is in place. It exports nothing.
#![forbid(unsafe_code)]

//! gapless-client: the native (reqwest + tokio) client of gapless.
//!
//! It drives `gapless-core`'s resume state machine, so a subscription reads a
//! stream's history and then its live tail without gap or duplicate, across
//! reconnects and server restarts; and it produces with idempotent appends, so a
//! retried append is applied exactly once. It speaks plain Durable Streams and works
//! with any Durable Streams server.
//!
//! ```no_run
//! # async fn demo() -> Result<(), gapless_client::Error> {
//! use futures::StreamExt;
//! use gapless_client::{Client, Update};
//! use gapless_core::Offset;
//!
//! let client = Client::builder().bearer_token("secret").build()?;
//! let stream = client.stream("http://127.0.0.1:4437/v1/stream/demo");
//! let mut sub = stream.subscribe(Offset::START);
//! while let Some(update) = sub.next().await {
//!     match update? {
//!         Update::Batch(batch) => println!("{} messages, resume at {}", batch.payload.len(), batch.next_offset),
//!         Update::UpToDate { .. } => println!("caught up; live from here"),
//!         Update::Closed { .. } => break,
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`client`]: [`Client`] and [`StreamHandle`]: create, append, close, head, delete.
//! - [`subscribe`]: the driver of the resume machine, as a [`Subscription`] stream.
//! - [`producer`]: the idempotent [`Producer`] with its coalescing queue.
//! - [`session`]: typed session events, a live `SessionView`, a session producer.
//! - [`guard`]: the [`CrashGuard`] that reports an agent runner's death durably.
//! - [`simulate`]: a scripted agent session, for demos and examples.
//! - [`error`]: the [`Error`] enum.
#![forbid(unsafe_code)]

pub mod client;
pub mod error;
pub mod guard;
pub mod producer;
pub mod session;
pub mod simulate;
pub mod subscribe;

pub use client::{Client, ClientBuilder, CreateOptions, StreamHandle, StreamInfo};
pub use error::Error;
pub use guard::CrashGuard;
pub use producer::{Ack, Producer, ProducerConfig};
pub use session::{SessionProducer, SessionSubscription, SessionUpdate, SessionWatch};
pub use subscribe::{Subscription, Update};

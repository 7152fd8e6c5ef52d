//! Browser driver (wasm-bindgen + gloo-net) of the gapless resume state machine, with a JavaScript API.
//!
//! Not implemented yet: this crate is an empty member of the workspace so that the
//! layout is in place. It exports nothing.
#![forbid(unsafe_code)]

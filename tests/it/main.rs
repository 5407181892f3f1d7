//! One integration test binary: every test starts the real server over TLS on an ephemeral
//! port and talks HTTPS to it.

#[macro_use]
mod store;
mod helpers;
mod pg;

mod cli;
mod concurrency;
mod gc;
mod robustness;
mod s3;
mod seed;
mod server;
mod tokens;
mod visibility;

//! One integration test binary: every test starts the real server over TLS on an ephemeral
//! port and talks HTTPS to it.

mod helpers;

mod cli;
mod robustness;
mod seed;
mod tokens;
mod visibility;

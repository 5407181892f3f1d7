//! One integration test binary: every test starts the real server over TLS on an ephemeral
//! port and talks HTTPS to it.

#[macro_use]
mod store;
mod helpers;
mod pg;
mod quota;

mod acme;
mod browser;
mod cli;
mod concurrency;
mod content_types;
mod cors;
mod disk;
mod edge;
mod faults;
mod gc;
mod group_commit;
mod h2_flow;
mod hostile;
mod hostile_forms;
mod import;
mod login_limits;
mod moto;
mod openapi;
mod operator;
mod proxy;
mod robustness;
mod s3;
mod seed;
mod server;
mod sessions;
mod shutdown;
mod sqlite_lock;
mod tls;
mod tokens;
mod tus;
mod tus_interop;
mod tus_limits;
mod tus_nodes;
mod v2;
mod visibility;

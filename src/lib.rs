//! mtfu: a multi-tenant file upload server.
//!
//! Tenants upload files over HTTPS, link each to a `resource`/`resource_id` pair and then list,
//! download and delete them. The crate is layered so that each layer can be read alone:
//!
//! - [`http`]: the hyper server, the router and one module per endpoint group; the only place
//!   that knows about HTTP status codes and the contract's JSON shapes.
//! - [`auth`]: JWT access/refresh tokens and argon2 password hashes.
//! - [`service`]: tenant-scoped use-cases (upload, list, delete, download) over the two stores.
//! - [`upload`]: the one upload pipeline (stream → size limit → sha256 → blob writer) and the
//!   global buffer budget that bounds memory.
//! - [`tus`]: resumable uploads (tus 1.0.0): leased upload state in the metadata store,
//!   resumable blobs, a SHA-256 midstate carried across chunks and nodes.
//! - [`meta`]: the metadata store trait and its SQLite implementation.
//! - [`blob`]: the blob store trait and its local-disk implementation.
//! - [`gc`]: removal of the blobs of deleted/expired files, abandoned uploads and orphans.
//! - [`config`], [`tls`], [`app`]: configuration, certificates, and wiring it all together.

pub mod acme;
pub mod app;
pub mod auth;
pub mod blob;
pub mod cleanup;
pub mod config;
pub mod content_type;
pub mod domain;
pub mod fsck;
pub mod gc;
pub mod hooks;
pub mod http;
pub mod import;
pub mod meta;
pub mod notify;
pub mod quota;
pub mod service;
pub mod telemetry;
pub mod tls;
pub mod tus;
pub mod upload;

//! mtfu: a multi-tenant file upload server.
//!
//! Tenants upload files over HTTPS, link each to a `resource`/`resource_id` pair and then list,
//! download and delete them. The crate is layered so that each layer can be read alone; a module
//! imports only from the layers below it:
//!
//! - [`app`]: wiring: opens the stores, loads TLS, binds the listeners, runs until stopped.
//! - [`http`]: the hyper server, the router and one module per endpoint group; the only place
//!   that knows about HTTP status codes and the contract's JSON shapes.
//! - [`acme`] over [`tls`]: certificates obtained and renewed from an ACME CA, over the
//!   certificate store (PEM files, self-signed, where each certificate is kept, reload).
//! - [`service`], [`tus`], [`gc`], [`fsck`], [`import`]: the use-cases over the two stores:
//!   uploads, listings, downloads and deletes; resumable uploads (tus 1.0.0); garbage
//!   collection; the consistency check; the import of the original service's data.
//! - [`upload`], [`quota`]: the one upload pipeline (stream → size limit → quota → sha256 → blob
//!   writer) and quota admission.
//! - [`auth`]: JWT access/refresh tokens, argon2 and Django password hashes, signed links.
//! - [`meta`]: the metadata store trait, written once over the SQL both stores share
//!   (`meta::sql`), and the SQLite and PostgreSQL connections, transactions and hooks under it.
//! - [`blob`]: the blob store trait and its local-disk and S3 implementations.
//! - [`budget`]: the global buffer budget that bounds the bytes all uploads hold in memory (the
//!   blob writers pay from it, the pipeline above hands it down).
//! - [`config`]: figment loading of the configuration; one module per section under
//!   `config/` (server, tls, auth, limits, metadata, blobs, gc, tus, cors, http2), each with
//!   its defaults and checks.
//! - [`domain`], [`content_type`]: identifiers parsed at the edge, file records, Unicode rules of
//!   names, the download disposition, content-type decisions; no I/O.
//! - [`shutdown`], [`cleanup`], [`hooks`], [`notify`], [`telemetry`]: the stop signal, clean-up
//!   tasks shutdown waits for, test pause points, systemd notifications, the metrics catalogue.

pub mod acme;
pub mod app;
pub mod auth;
pub mod blob;
pub mod budget;
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
pub mod shutdown;
pub mod telemetry;
pub mod tls;
pub mod tus;
pub mod upload;

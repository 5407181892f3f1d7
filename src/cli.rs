//! The modules of the `mtfu` binary (declared by `main.rs`, not part of the library): the
//! command line, logging, and the commands that need more than a few lines.

pub mod args;
pub mod logging;
#[cfg(test)]
mod man;
pub mod serve;
pub mod tenant;

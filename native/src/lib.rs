//! The native side of aether as a library: the CLI subcommands, the HTTP server, memory-mapped
//! model files and the thread pool. `main.rs` is a thin dispatcher over it, and the tests drive
//! the server's router directly.

pub mod cmd;
pub mod exec;
pub mod model_file;
pub mod server;

//! TLS server configuration (rustls with the ring provider).

use std::sync::Arc;

use crate::config::Config;

/// Builds the server config from `[tls]`, or from the self-signed pair for `server.hostname`
/// generated once into `data_dir/tls/` when `[tls]` is absent.
pub fn server_config(config: &Config) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let _ = config;
    todo!("tls work")
}

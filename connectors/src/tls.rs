//! TLS client settings shared by the network connectors (IMAP, LDAP): the
//! system's root certificates plus an optional internal CA, always verified, with
//! the ring provider named explicitly so no process-wide default is needed.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Why the TLS settings could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The CA file could not be read or holds no certificate.
    #[error("CA file {path}: {message}")]
    CaFile {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// rustls refused the settings.
    #[error("TLS settings: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The system's root certificates, read once per process (parsing them is most of
/// the time of a rescan that finds nothing new). Certificates the system store
/// holds but rustls cannot parse are skipped; what loaded is used.
fn native_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: std::sync::OnceLock<Vec<CertificateDer<'static>>> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

/// TLS client settings: the system's roots plus `ca_file`, always verified, with
/// the ring provider set explicitly (no process-wide default needed). A
/// plain connection (`with_system_roots` false) still gets a config, unused.
pub fn tls_config(
    ca_file: Option<&Path>,
    with_system_roots: bool,
) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    if with_system_roots {
        roots.add_parsable_certificates(native_roots().iter().cloned());
    }
    if let Some(path) = ca_file {
        let ca_error = |message: String| TlsSetupError::CaFile {
            path: path.display().to_string(),
            message,
        };
        let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|error| ca_error(error.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|error| ca_error(error.to_string()))?;
        if certificates.is_empty() {
            return Err(ca_error("no certificate in it".into()));
        }
        for certificate in certificates {
            roots
                .add(certificate)
                .map_err(|error| ca_error(error.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Make ring the process's default rustls provider, for libraries that build
/// their own TLS configs from it (the SMTP client). Call once, first thing; a
/// second call changes nothing.
pub fn install_default_provider() {
    // Err means a provider is installed already: the first one stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

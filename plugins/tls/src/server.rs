//! Server configurations, and certificate/key files.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A TLS file that could not be used; names the flag and the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read or parsed.
    #[error("{flag} {}: {message}", path.display())]
    File {
        /// The flag that named the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("{flag}: {message}")]
    Config {
        /// The flag whose value was refused.
        flag: &'static str,
        /// rustls' reason.
        message: String,
    },
}

/// A certificate chain and its private key.
#[derive(Debug)]
pub struct Identity {
    /// The chain, leaf first.
    pub certs: Vec<CertificateDer<'static>>,
    /// The leaf's key.
    pub key: PrivateKeyDer<'static>,
}

fn certificates(flag: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file_error = |message: String| TlsError::File {
        flag,
        path: path.into(),
        message,
    };
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| file_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(file_error("no certificate found".into()));
    }
    Ok(certs)
}

/// Reads a certificate chain (`cert_flag` names `cert`) and its key (`key_flag`, `key`).
pub fn load_identity(
    (cert_flag, cert): (&'static str, &Path),
    (key_flag, key): (&'static str, &Path),
) -> Result<Identity, TlsError> {
    let certs = certificates(cert_flag, cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::File {
        flag: key_flag,
        path: key.into(),
        message: e.to_string(),
    })?;
    Ok(Identity { certs, key })
}

/// A server presenting `identity` (its key named by `key_flag` in errors); with `client_ca`
/// (`ca_flag`, PEM file), every client must present a certificate signed by that CA.
pub fn server_config(
    identity: Identity,
    key_flag: &'static str,
    client_ca: Option<(&'static str, &Path)>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config {
            flag: key_flag,
            message: e.to_string(),
        })?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some((ca_flag, path)) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca_flag, path)? {
                roots.add(cert).map_err(|e| TlsError::File {
                    flag: ca_flag,
                    path: path.into(),
                    message: e.to_string(),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .map_err(|e| TlsError::Config {
                    flag: ca_flag,
                    message: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(identity.certs, identity.key)
        .map_err(|e| TlsError::Config {
            flag: key_flag,
            message: e.to_string(),
        })?;
    Ok(Arc::new(config))
}

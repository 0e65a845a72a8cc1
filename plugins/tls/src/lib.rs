//! `shadowtap-tls`: the rustls configurations (ring provider) shared by shadowtap's network
//! plugins. Clients (`output-http`, `output-tcp`): the system's root certificates, or no
//! verification at all when the user asks for it with the output's `--…-skip-verify` flag, and
//! optionally a client certificate. Servers (`input-tcp`): a certificate chain and key, and
//! optionally a CA whose signed client certificates are then required.
#![deny(missing_docs)]

mod server;

pub use server::{load_identity, server_config, Identity, TlsError};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;

/// A client configuration: `skip_verify` disables certificate checks; `alpn` lists the
/// protocols to offer; `skip_flag` names the flag in the warning printed when the system has
/// no root certificates.
pub fn client_config(
    skip_verify: bool,
    alpn: &[&[u8]],
    skip_flag: &str,
) -> Result<Arc<ClientConfig>, String> {
    client_config_with_identity(skip_verify, alpn, skip_flag, None)
}

/// [`client_config`] that also presents `identity` (a client certificate) when given.
pub fn client_config_with_identity(
    skip_verify: bool,
    alpn: &[&[u8]],
    skip_flag: &str,
    identity: Option<Identity>,
) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let builder = if skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
    } else {
        let mut roots = RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        let (added, _ignored) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            tracing::warn!(
                "no system root certificates found; TLS targets will fail verification \
                 (install ca-certificates or use {skip_flag})"
            );
        }
        builder.with_root_certificates(roots)
    };
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(identity) => builder
            .with_client_auth_cert(identity.certs, identity.key)
            .map_err(|e| format!("client certificate: {e}"))?,
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The TLS server name for `host` (a DNS name or an IP address).
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string())
        .map_err(|e| format!("invalid TLS server name {host:?}: {e}"))
}

/// Accepts any certificate (the signatures of the handshake itself are still checked).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

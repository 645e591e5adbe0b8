//! TLS for pgsafe's own connection, with libpq's sslmode semantics: `allow`/`prefer`/`require`
//! encrypt without verifying the server (as libpq does without a root certificate), `verify-ca`
//! checks the chain against `sslrootcert`, `verify-full` also checks the host name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::Error;

/// What the connection needs: no TLS, or a connector configured for the sslmode.
pub fn connector(
    sslmode: &str,
    rootcert: Option<&str>,
    cert: Option<&str>,
    key: Option<&str>,
) -> Result<Option<MakeRustlsConnect>, Error> {
    if sslmode == "disable" {
        return Ok(None);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::failed(format!("TLS setup failed: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = match sslmode {
        "verify-ca" | "verify-full" => {
            let roots = load_roots(sslmode, rootcert)?;
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| Error::usage(format!("unusable root certificates: {e}")))?;
            if sslmode == "verify-full" {
                webpki
            } else {
                Arc::new(ChainOnly(webpki))
            }
        }
        _ => Arc::new(NoVerify(provider)),
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (cert, key) {
        (Some(cert), Some(key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| Error::usage(format!("cannot read sslcert {cert}: {e}")))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| Error::usage(format!("cannot read sslkey {key}: {e}")))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| Error::usage(format!("unusable client certificate: {e}")))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(Error::usage("sslcert and sslkey go together")
                .hint("give both the client certificate and its key, or neither"))
        }
    };
    Ok(Some(MakeRustlsConnect::new(config)))
}

fn load_roots(sslmode: &str, rootcert: Option<&str>) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    let default = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".postgresql/root.crt"));
    match rootcert {
        Some("system") => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
        Some(path) => add_pem(&mut roots, Path::new(path))?,
        None => match default.filter(|p| p.is_file()) {
            Some(path) => add_pem(&mut roots, &path)?,
            None => {
                return Err(Error::usage(format!(
                    "sslmode={sslmode} needs the certificate of the authority that signed the server's"
                ))
                .hint("set sslrootcert=/path/to/ca.crt in the URL (or PGSSLROOTCERT), or sslrootcert=system"))
            }
        },
    }
    if roots.is_empty() {
        return Err(Error::usage(
            "no root certificate could be loaded for sslmode verification",
        ));
    }
    Ok(roots)
}

fn add_pem(roots: &mut RootCertStore, path: &Path) -> Result<(), Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| Error::usage(format!("cannot read sslrootcert {}: {e}", path.display())))?;
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| Error::usage(format!("invalid certificate in {}: {e}", path.display())))?;
    }
    Ok(())
}

/// `allow`, `prefer`, `require`: encrypted, server not authenticated (libpq's behaviour without
/// a root certificate). Handshake signatures are still checked.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
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

/// `verify-ca`: the chain must lead to a trusted root; the host name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_missing_root_certificate() {
        assert!(connector("disable", None, None, None).unwrap().is_none());
        assert!(connector("require", None, None, None).unwrap().is_some());
        let err = connector("verify-full", Some("/nonexistent/ca.crt"), None, None)
            .err()
            .unwrap();
        assert!(
            err.message
                .contains("cannot read sslrootcert /nonexistent/ca.crt"),
            "{}",
            err.message
        );
        let err = connector("require", None, Some("/x.crt"), None)
            .err()
            .unwrap();
        assert!(err.message.contains("go together"));
    }
}

//! TLS to the database, as libpq's URLs ask for it. `sslmode` is read by
//! the driver: `disable` never encrypts; `prefer` (the default) encrypts
//! when the server offers TLS; `require` refuses a server that does not.
//! Whenever TLS is used, the server's certificate is verified, and the
//! host name of the URL must be in it, as libpq's `verify-full` does. The
//! certificates trusted are the Mozilla roots (`webpki-roots`) or, with
//! `sslrootcert=FILE` in the URL, the PEM certificates of that file
//! instead (a managed database's own authority).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::providers::StoreError;

/// The URL without its `sslrootcert` parameter (which the driver does not
/// know), and that parameter's file.
pub(super) fn split_root_cert(url: &str) -> (String, Option<PathBuf>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None);
    };
    let mut root = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix("sslrootcert=") {
            Some(file) => {
                root = Some(PathBuf::from(percent_decoded(file)));
                false
            }
            None => true,
        })
        .collect();
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, root)
}

/// `%2F` and the like in a URL parameter, decoded; anything else as is.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The connector every connection of the pool is made with.
pub(super) fn connector(root_file: Option<&Path>) -> Result<MakeRustlsConnect, StoreError> {
    let mut roots = rustls::RootCertStore::empty();
    match root_file {
        Some(file) => {
            let pem = std::fs::read(file).map_err(|e| {
                StoreError::Backend(format!(
                    "postgres: sslrootcert {}: cannot read it: {e}",
                    file.display()
                ))
            })?;
            let certificates = rustls_pki_types::CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    StoreError::Backend(format!(
                        "postgres: sslrootcert {}: not PEM certificates: {e}",
                        file.display()
                    ))
                })?;
            let (added, _) = roots.add_parsable_certificates(certificates);
            if added == 0 {
                return Err(StoreError::Backend(format!(
                    "postgres: sslrootcert {} has no certificate that can be trusted",
                    file.display()
                )));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Backend(format!("postgres: TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_certificate_parameter_is_taken_out() {
        assert_eq!(
            split_root_cert("postgres://db/flows?sslmode=require&sslrootcert=%2Fetc%2Fca.pem"),
            (
                "postgres://db/flows?sslmode=require".to_string(),
                Some(PathBuf::from("/etc/ca.pem"))
            )
        );
        assert_eq!(
            split_root_cert("postgres://db/flows?sslrootcert=ca.pem"),
            (
                "postgres://db/flows".to_string(),
                Some(PathBuf::from("ca.pem"))
            )
        );
        assert_eq!(
            split_root_cert("postgres://db/flows?sslmode=disable"),
            ("postgres://db/flows?sslmode=disable".to_string(), None)
        );
    }

    #[test]
    fn an_unreadable_root_file_is_named() {
        let Err(error) = connector(Some(Path::new("/nonexistent/ca.pem"))) else {
            panic!("a missing file is an error");
        };
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }
}

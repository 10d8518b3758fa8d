//! The certificates a TLS client trusts (MQTT's `mqtts://`, PostgreSQL's `sslmode=require`):
//! those of a CA file the address names, or the system's.

use std::path::Path;

/// The certificates of `ca` (PEM), or the system's store without one; an error when none
/// is found (`option` names the address's option for it, for the message).
pub(crate) fn root_store(ca: Option<&Path>, option: &str) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(p) => roots.add_parsable_certificates(pem_certs(p)?),
        None => roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs),
    };
    if roots.is_empty() {
        return Err(format!(
            "no CA certificate found (in {}); give one with {option}=FILE.pem",
            ca.map_or("the system's store".into(), |p| p.display().to_string())
        ));
    }
    Ok(roots)
}

/// The certificates in a PEM file.
pub(crate) fn pem_certs(
    p: &Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    let pem = std::fs::read(p).map_err(|e| format!("reading {}: {e}", p.display()))?;
    rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("reading {}: {e}", p.display()))
}

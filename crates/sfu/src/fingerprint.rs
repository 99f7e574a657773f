//! DTLS fingerprints of every algorithm mediasoup accepts (sha-1, sha-224, sha-256, sha-384, sha-512).
//!
//! str0m checks a peer certificate only against sha-256 and sha-1 fingerprints; with any other it fails the
//! transport ("unsupported fingerprint hash function"). pymediasoup on aiortc signals only the last fingerprint
//! aiortc lists, which is sha-512, so such a client got an acked `connect-transport` and then no media at all.
//!
//! So every transport is built with str0m's own check switched off, and the core checks the peer certificate
//! itself once DTLS is up (before any media of that transport is handled): for sha-256 and sha-1 against the
//! fingerprint str0m computed with that algorithm; for the others against a digest of the peer's DER certificate,
//! which str0m does not expose. str0m does hash that certificate (with sha-256, when it cannot use the announced
//! algorithm) through its crypto provider, so our provider's sha-256 hands the bytes it hashes to
//! [`Capture`] while a transport that needs them is being driven on this thread. Thread-local because a core is
//! driven by one thread and str0m's provider is a process-wide `&'static`.

use sha2::Digest;
use std::cell::RefCell;
use std::sync::{Arc, OnceLock};
use str0m::crypto::{CryptoProvider, Sha256Provider};

/// Algorithms accepted in `dtlsParameters.fingerprints` (mediasoup's list).
pub const ALGORITHMS: [&str; 5] = ["sha-1", "sha-224", "sha-256", "sha-384", "sha-512"];

thread_local! {
    /// `Some` while a transport that needs its peer's certificate is driven: the DER certificate str0m hashed.
    static CAPTURED: RefCell<Option<Option<Vec<u8>>>> = const { RefCell::new(None) };
}

fn default_provider() -> &'static CryptoProvider {
    static DEFAULT: OnceLock<CryptoProvider> = OnceLock::new();
    DEFAULT.get_or_init(str0m::crypto::from_feature_flags)
}

/// The default provider's sha-256, remembering certificate-shaped inputs while a capture is armed.
#[derive(Debug)]
struct CapturingSha256;

static CAPTURING_SHA256: CapturingSha256 = CapturingSha256;

impl Sha256Provider for CapturingSha256 {
    fn sha256(&self, data: &[u8]) -> [u8; 32] {
        // A DER certificate is a SEQUENCE with a long-form length.
        if data.len() > 64 && data.first() == Some(&0x30) {
            CAPTURED.with(|c| {
                if let Some(slot) = c.borrow_mut().as_mut() {
                    *slot = Some(data.to_vec());
                }
            });
        }
        default_provider().sha256_provider.sha256(data)
    }
}

/// The crypto provider every transport's `Rtc` is built with.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            Arc::new(CryptoProvider {
                sha256_provider: &CAPTURING_SHA256,
                ..default_provider().clone()
            })
        })
        .clone()
}

/// Arms the capture for the duration of one call into str0m; returns what was captured.
pub fn capturing<R>(armed: bool, f: impl FnOnce() -> R) -> (R, Option<Vec<u8>>) {
    if !armed {
        return (f(), None);
    }
    CAPTURED.with(|c| *c.borrow_mut() = Some(None));
    let r = f();
    let der = CAPTURED.with(|c| c.borrow_mut().take().flatten());
    (r, der)
}

/// What str0m can check itself (it computes the peer's fingerprint with these).
pub fn str0m_computes(algorithm: &str) -> bool {
    matches!(algorithm, "sha-256" | "sha-1")
}

/// The digest of a DER certificate with one of [`ALGORITHMS`].
pub fn digest(algorithm: &str, der: &[u8]) -> Option<Vec<u8>> {
    Some(match algorithm {
        "sha-1" => default_provider().sha1_provider.sha1(der).to_vec(),
        "sha-224" => sha2::Sha224::digest(der).to_vec(),
        "sha-256" => sha2::Sha256::digest(der).to_vec(),
        "sha-384" => sha2::Sha384::digest(der).to_vec(),
        "sha-512" => sha2::Sha512::digest(der).to_vec(),
        _ => return None,
    })
}

/// The digest length of an algorithm, in bytes.
pub fn digest_len(algorithm: &str) -> Option<usize> {
    Some(match algorithm {
        "sha-1" => 20,
        "sha-224" => 28,
        "sha-256" => 32,
        "sha-384" => 48,
        "sha-512" => 64,
        _ => return None,
    })
}

/// Constant-time comparison of two digests.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_have_the_announced_lengths() {
        for a in ALGORITHMS {
            assert_eq!(digest(a, b"x").map(|d| d.len()), digest_len(a), "{a}");
        }
        assert_eq!(digest("md5", b"x"), None);
    }

    #[test]
    fn the_capture_sees_only_what_str0m_hashes_while_armed() {
        let der = {
            let mut d = vec![0x30, 0x82, 0x01, 0x00];
            d.extend(std::iter::repeat_n(7u8, 200));
            d
        };
        let p = provider();
        let ((), seen) = capturing(true, || {
            p.sha256_provider.sha256(&der);
        });
        assert_eq!(seen.as_deref(), Some(&der[..]));
        let ((), unarmed) = capturing(false, || {
            p.sha256_provider.sha256(&der);
        });
        assert_eq!(unarmed, None);
        // Not armed: nothing is kept for a later capture either.
        let ((), later) = capturing(true, || {});
        assert_eq!(later, None);
        // Still a correct sha-256.
        assert_eq!(
            p.sha256_provider.sha256(b"abc").to_vec(),
            digest("sha-256", b"abc").unwrap_or_default()
        );
    }

    #[test]
    fn same_compares_whole_digests() {
        assert!(same(&[1, 2, 3], &[1, 2, 3]));
        assert!(!same(&[1, 2, 3], &[1, 2, 4]));
        assert!(!same(&[1, 2], &[1, 2, 3]));
    }
}

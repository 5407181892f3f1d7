//! Django's password hash formats, verified for tenants imported from the original service
//! (`mtfu import-seed` keeps their hashes as they are). A successful login replaces such a hash
//! with mtfu's argon2id, so each is verified through here at most until its tenant's first login.
//!
//! Formats (those a Django 4.2 database can hold, `django.contrib.auth.hashers`):
//! `pbkdf2_sha256$<iterations>$<salt>$<base64>` and `pbkdf2_sha1$...` (the salt used as text),
//! `argon2$argon2id$v=19$m=..,t=..,p=..$<salt>$<hash>` (a PHC string after `argon2`),
//! `bcrypt_sha256$$2b$...` (bcrypt of the hex SHA-256 of the password), `bcrypt$$2b$...`,
//! `scrypt$<n>$<salt>$<r>$<p>$<base64>` (64-byte key), and unusable passwords `!...` (and an
//! empty field), which never verify. Digests are compared in constant time. Work factors come
//! from the hash; those past the bounds below are refused rather than computed, so a hash cannot
//! make one login take unbounded memory or time.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use subtle::ConstantTimeEq;

/// Most PBKDF2 iterations computed (Django 5.2 uses 1,000,000).
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
/// Most memory an argon2 or scrypt hash may ask for, in KiB (Django's argon2 default: 100 MiB).
const MAX_MEMORY_KIB: u64 = 256 * 1024;

/// Whether `hash` is in one of Django's formats (mtfu's own are PHC strings, `$argon2id$...`).
pub fn is_django(hash: &str) -> bool {
    !hash.starts_with('$')
}

/// Whether `hash` names an algorithm this module computes (not `!...`, empty, or unknown).
pub fn usable(hash: &str) -> bool {
    let alg = hash.split_once('$').map(|(a, _)| a);
    matches!(
        alg,
        Some("pbkdf2_sha256" | "pbkdf2_sha1" | "argon2" | "bcrypt_sha256" | "bcrypt" | "scrypt")
    )
}

/// Check `password` against a Django-format `hash`. False for an unusable or unknown one.
pub fn verify(hash: &str, password: &[u8]) -> bool {
    let Some((algorithm, rest)) = hash.split_once('$') else {
        return false;
    };
    match algorithm {
        "pbkdf2_sha256" => pbkdf2(rest, password, ::pbkdf2::pbkdf2_hmac::<sha2::Sha256>),
        "pbkdf2_sha1" => pbkdf2(rest, password, ::pbkdf2::pbkdf2_hmac::<sha1_010::Sha1>),
        "argon2" => argon2(&format!("${rest}"), password),
        "bcrypt_sha256" => {
            use sha2::Digest;
            let hex = hex::encode(sha2::Sha256::digest(password));
            bcrypt(rest, hex.as_bytes())
        }
        "bcrypt" => bcrypt(rest, password),
        "scrypt" => scrypt(rest, password),
        _ => false,
    }
}

/// PBKDF2-HMAC of the given digest, into `out`.
type Prf = fn(&[u8], &[u8], u32, &mut [u8]);

fn pbkdf2(rest: &str, password: &[u8], prf: Prf) -> bool {
    let mut parts = rest.splitn(3, '$');
    let (Some(iterations), Some(salt), Some(expected)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let (Ok(iterations), Ok(expected)) = (iterations.parse::<u32>(), STANDARD.decode(expected))
    else {
        return false;
    };
    if iterations == 0 || iterations > MAX_PBKDF2_ITERATIONS || expected.is_empty() {
        return false;
    }
    let mut out = vec![0u8; expected.len()];
    prf(password, salt.as_bytes(), iterations, &mut out);
    bool::from(out.ct_eq(&expected))
}

fn argon2(phc: &str, password: &[u8]) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    match argon2::Params::try_from(&parsed) {
        Ok(p) if u64::from(p.m_cost()) <= MAX_MEMORY_KIB => {}
        _ => return false,
    }
    // The verifier reads the variant, version and parameters from the hash and compares in
    // constant time.
    argon2::Argon2::default()
        .verify_password(password, &parsed)
        .is_ok()
}

fn bcrypt(rest: &str, password: &[u8]) -> bool {
    // `$2b$<cost>$<salt+hash>` after Django's empty field.
    let Some(hash) = rest.strip_prefix('$').map(|h| format!("${h}")) else {
        return false;
    };
    match hash.get(4..6).and_then(|c| c.parse::<u32>().ok()) {
        Some(cost) if (4..=16).contains(&cost) => {}
        _ => return false,
    }
    // Like Python's bcrypt, which Django uses: only the first 72 bytes of a password count.
    let password = &password[..password.len().min(72)];
    ::bcrypt::verify(password, &hash).unwrap_or(false)
}

fn scrypt(rest: &str, password: &[u8]) -> bool {
    let parts: Vec<&str> = rest.split('$').collect();
    let [n, salt, r, p, expected] = parts[..] else {
        return false;
    };
    let (Ok(n), Ok(r), Ok(p), Ok(expected)) = (
        n.parse::<u64>(),
        r.parse::<u32>(),
        p.parse::<u32>(),
        STANDARD.decode(expected),
    ) else {
        return false;
    };
    // n a power of two; memory 128 * n * r bytes.
    if !n.is_power_of_two() || n < 2 || expected.is_empty() || p == 0 || p > 16 {
        return false;
    }
    if 128 * n * u64::from(r) / 1024 > MAX_MEMORY_KIB {
        return false;
    }
    let Ok(params) = ::scrypt::Params::new(n.trailing_zeros() as u8, r, p, expected.len()) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    if ::scrypt::scrypt(password, salt.as_bytes(), &params, &mut out).is_err() {
        return false;
    }
    bool::from(out.ct_eq(&expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hashes made by Django's own hashers (tests/fixtures/django_hashes.py).
    fn fixtures() -> Vec<(String, String, String)> {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/django_hashes.json"))
                .expect("fixture json");
        v.as_array()
            .expect("array")
            .iter()
            .map(|f| {
                let s = |k: &str| f[k].as_str().expect("string").to_owned();
                (s("algorithm"), s("password"), s("encoded"))
            })
            .collect()
    }

    #[test]
    fn every_django_hasher_verifies_its_password_and_nothing_else() {
        let all = fixtures();
        assert_eq!(all.len(), 7);
        for (alg, password, encoded) in &all {
            assert!(is_django(encoded), "{alg}");
            if alg == "unusable" {
                assert!(!verify(encoded, b""), "{alg}");
                assert!(!verify(encoded, encoded.as_bytes()), "{alg}");
                continue;
            }
            assert!(verify(encoded, password.as_bytes()), "{alg}");
            assert!(!verify(encoded, b"wrong"), "{alg}");
            let mut other = password.clone().into_bytes();
            other[0] ^= 1;
            assert!(!verify(encoded, &other), "{alg}");
        }
    }

    #[test]
    fn hand_computed_pbkdf2_matches_and_tampering_fails() {
        // Django's documented algorithm: base64(PBKDF2-HMAC-SHA256(password, salt, n, 32)).
        let mut out = [0u8; 32];
        ::pbkdf2::pbkdf2_hmac::<sha2::Sha256>(b"pw", b"salt", 1000, &mut out);
        let h = format!("pbkdf2_sha256$1000$salt${}", STANDARD.encode(out));
        assert!(verify(&h, b"pw"));
        assert!(!verify(&h.replace("$1000$", "$1001$"), b"pw"));
        assert!(!verify(&h.replace("$salt$", "$salu$"), b"pw"));
        assert!(!verify("pbkdf2_sha256$99999999999$salt$AAAA", b"pw"));
        assert!(!verify("md5$salt$abc", b"pw"));
        assert!(!verify("", b""));
        assert!(!is_django(
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA"
        ));
    }
}

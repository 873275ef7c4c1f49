//! API key secrets: `arb_` + 32 random base62 characters + a 6-character base62 CRC32 checksum of
//! what precedes it, as GitHub's tokens do. A malformed key is refused without a lookup, and a
//! scanner can recognise a leaked one.

use rand::distributions::Alphanumeric;
use rand::Rng;

/// The prefix of every generated key.
pub const KEY_PREFIX: &str = "arb_";
const RANDOM_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The minimum length of a key given by `ARBITER_BOOTSTRAP_KEY`.
pub const MIN_BOOTSTRAP_KEY_LEN: usize = 32;

/// The checksum's characters (base62, so ASCII). An array, not a `String`: a presented key's is
/// computed on every request it authenticates.
fn checksum(body: &str) -> [u8; CHECKSUM_LEN] {
    let mut n = crc32fast::hash(body.as_bytes());
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62.get((n % 62) as usize).copied().unwrap_or(b'0');
        n /= 62;
    }
    out
}

/// A new random key.
pub fn generate() -> String {
    let random: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(RANDOM_LEN)
        .map(char::from)
        .collect();
    let body = format!("{KEY_PREFIX}{random}");
    let sum = checksum(&body);
    format!("{body}{}", String::from_utf8_lossy(&sum))
}

/// True when a presented key could be valid: a generated key with a correct checksum, or a
/// long enough operator-chosen bootstrap key. Cheap; no lookup.
pub fn plausible(key: &str) -> bool {
    // Printable ASCII but the space: no whitespace, no control character, nothing past ASCII.
    if key.len() > 256 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return false;
    }
    if let Some(rest) = key.strip_prefix(KEY_PREFIX) {
        if rest.len() == RANDOM_LEN + CHECKSUM_LEN {
            let (body, sum) = key.split_at(KEY_PREFIX.len() + RANDOM_LEN);
            return checksum(body) == sum.as_bytes();
        }
    }
    key.len() >= MIN_BOOTSTRAP_KEY_LEN
}

/// The first characters of a key, to recognise it in a list.
pub fn display_prefix(key: &str) -> String {
    key.chars().take(10).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_carry_a_valid_checksum() {
        for _ in 0..100 {
            let key = generate();
            assert!(key.starts_with("arb_"));
            assert_eq!(key.len(), 4 + 32 + 6);
            assert!(plausible(&key));
            let mut tampered = key.clone().into_bytes();
            tampered[10] = if tampered[10] == b'a' { b'b' } else { b'a' };
            assert!(!plausible(&String::from_utf8(tampered).unwrap()));
        }
        assert!(!plausible("arb_short"));
        assert!(!plausible("short"));
        assert!(plausible("an-operator-chosen-bootstrap-key-0123456789"));
        for refused in [
            "an-operator-chosen bootstrap-key-0123456789",
            "an-operator-chosen-bootstrap-key-0123456789\t",
            "an-operator-chosen-bootstrap-key-0123456789\u{7f}",
            "an-operator-chosen-bootstrap-key-0123456789\u{e9}",
        ] {
            assert!(!plausible(refused), "{refused:?}");
        }
    }
}

//! Permission tickets (Fed §4, Grant §3.3): issued by the permission endpoint, rotated by the
//! grant and the claims interaction endpoint, presented exactly once.
//!
//! A ticket whose record is small (the common case: a few permissions, no gathered claims) is
//! *sealed*: the record travels inside the ticket, encrypted and authenticated under a server
//! key, and only its spending is written to the store. Issuing one writes nothing. Under load,
//! the permission endpoint's durable write was most of its cost, and tickets that were never
//! redeemed were most of what the store (and the server's memory) grew by. Presenting a sealed
//! ticket still records, durably and atomically, that it was used, so it stays single-use (S19).
//! Larger records are stored as before under a random value, so a ticket stays short enough for
//! a `WWW-Authenticate` header and a redirect URL.
//!
//! Sealing: each ticket has a fresh random 128-bit id, and its own AES-256-GCM key derived from
//! the server's seal secret and that id (HMAC-SHA-256). A key seals exactly one message, so the
//! fixed nonce is never reused and no per-key message limit applies. The id is the associated
//! data and the key under which the ticket's use is recorded. The record inside is the same
//! [`Ticket`] a stored ticket has, so both kinds behave the same from here on.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use crate::error::{Error, Result};
use crate::http::AppState;
use crate::keys::random_token;
use crate::store::{Store, Ticket, unix_now};

/// Records up to this size (JSON bytes) are sealed into the ticket; larger ones are stored.
/// 1 KiB keeps a sealed ticket under ~1,450 characters, well inside the 8 KiB that servers and
/// proxies commonly allow for a header line or a URL, and covers tickets of a dozen
/// permissions. Stored tickets cost a durable write and a flush at issuance.
pub const SEALED_MAX_BYTES: usize = 1024;

/// Stored tickets are base64url of this many random bytes (43 characters). Sealed tickets are
/// base64url(id ‖ ciphertext ‖ tag), always longer (the smallest record is ~100 bytes), so the
/// length tells the two apart and both stay plain base64url (T-1's alphabet, URL-safe).
const STORED_RANDOM_BYTES: usize = 32;
const STORED_LEN: usize = (STORED_RANDOM_BYTES * 4).div_ceil(3);
const ID_LEN: usize = 16;
const TAG_LEN: usize = 16;
/// The longest sealed ticket: base64url of the id, the largest record and the tag.
const SEALED_MAX_LEN: usize = ((ID_LEN + SEALED_MAX_BYTES + TAG_LEN) * 4).div_ceil(3);

/// How much longer than its ticket a spent id is remembered: hosts sharing one store may have
/// clocks a little apart, and one that is behind must still find the id spent.
const SPENT_MARGIN_SECS: u64 = 300;

/// The server's ticket-sealing key.
pub struct TicketSeal {
    key: hmac::Key,
}

impl TicketSeal {
    /// Loads (or on first start creates) the seal secret from the store, so tickets survive a
    /// restart and every host sharing the store accepts them.
    pub async fn load(store: &dyn Store) -> Result<TicketSeal> {
        Ok(TicketSeal::from_secret(
            &store.server_secret("ticket-seal").await?,
        ))
    }

    fn from_secret(secret: &[u8; 32]) -> TicketSeal {
        TicketSeal {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    fn cipher(&self, id: &[u8]) -> LessSafeKey {
        let derived = hmac::sign(&self.key, id);
        // A 32-byte key is always valid for AES-256-GCM.
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, derived.as_ref()).expect("32-byte key"))
    }

    fn seal(&self, record: &[u8]) -> Result<String> {
        let mut id = [0u8; ID_LEN];
        aws_lc_rs::rand::fill(&mut id).map_err(|_| Error::internal("CSPRNG failure"))?;
        let mut body = record.to_vec();
        self.cipher(&id)
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key([0; 12]),
                Aad::from(id),
                &mut body,
            )
            .map_err(|_| Error::internal("sealing a ticket failed"))?;
        Ok(B64.encode([&id[..], &body].concat()))
    }

    /// The ticket's id and record, if `value` was sealed by this key and not altered.
    fn open(&self, value: &str) -> Option<(String, Ticket)> {
        if value.len() > SEALED_MAX_LEN {
            return None;
        }
        let mut bytes = B64.decode(value).ok()?;
        if bytes.len() < ID_LEN + TAG_LEN {
            return None;
        }
        let mut body = bytes.split_off(ID_LEN);
        let id: [u8; ID_LEN] = bytes.try_into().ok()?;
        let record = self
            .cipher(&id)
            .open_in_place(
                Nonce::assume_unique_for_key([0; 12]),
                Aad::from(id),
                &mut body,
            )
            .ok()?;
        let ticket = serde_json::from_slice(record).ok()?;
        Some((B64.encode(id), ticket))
    }
}

/// Issues a ticket for `record`: sealed when small, stored otherwise.
pub async fn issue(state: &AppState, record: &Ticket) -> Result<String> {
    let json = serde_json::to_vec(record)?;
    if json.len() <= SEALED_MAX_BYTES {
        return state.tickets.seal(&json);
    }
    let value = random_token(STORED_RANDOM_BYTES)?;
    debug_assert_eq!(value.len(), STORED_LEN);
    state.store.put_ticket(&value, record).await?;
    Ok(value)
}

/// Spends the ticket and returns its record; `None` if it is unknown, altered, used or expired.
pub async fn take(state: &AppState, value: &str) -> Result<Option<Ticket>> {
    if value.len() <= STORED_LEN {
        return state.store.take_ticket(value).await;
    }
    let Some((id, ticket)) = state.tickets.open(value) else {
        return Ok(None);
    };
    if ticket.exp <= unix_now() {
        return Ok(None);
    }
    let first = state
        .store
        .spend_ticket(&id, ticket.exp.saturating_add(SPENT_MARGIN_SECS))
        .await?;
    Ok(first.then_some(ticket))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance;

    fn seal() -> TicketSeal {
        TicketSeal::from_secret(&[7; 32])
    }

    #[test]
    fn a_sealed_ticket_opens_to_its_record_and_each_has_its_own_id() {
        let s = seal();
        let record = conformance::ticket(unix_now() + 60);
        let json = serde_json::to_vec(&record).unwrap();
        let (a, b) = (s.seal(&json).unwrap(), s.seal(&json).unwrap());
        assert_ne!(
            a, b,
            "the same record seals to different tickets (S19 unguessable)"
        );
        let (id_a, opened) = s.open(&a).unwrap();
        let (id_b, _) = s.open(&b).unwrap();
        assert_ne!(id_a, id_b);
        assert_eq!(serde_json::to_vec(&opened).unwrap(), json);
        assert!(
            a.len() < 400,
            "a one-permission ticket stays short: {}",
            a.len()
        );
        assert!(
            a.len() > STORED_LEN,
            "told apart from a stored ticket by its length"
        );
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }

    #[test]
    fn s19_an_altered_or_foreign_ticket_does_not_open() {
        let s = seal();
        let json = serde_json::to_vec(&conformance::ticket(unix_now() + 60)).unwrap();
        let t = s.seal(&json).unwrap();
        // Every single-character change anywhere is refused.
        for i in 0..t.len() {
            let mut altered = t.as_bytes().to_vec();
            altered[i] = if altered[i] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(altered).unwrap();
            assert!(s.open(&altered).is_none(), "altered at {i}");
        }
        // Another server's key, truncations and junk are refused too.
        assert!(TicketSeal::from_secret(&[8; 32]).open(&t).is_none());
        assert!(s.open(&t[..t.len() - 1]).is_none());
        assert!(s.open(&t[..20]).is_none());
        assert!(s.open("").is_none());
        assert!(s.open(&"!".repeat(t.len())).is_none());
        assert!(s.open(&"A".repeat(1 << 20)).is_none());
    }

    #[test]
    fn a_record_of_exactly_the_limit_seals_and_opens() {
        let s = seal();
        let mut record = conformance::ticket(unix_now() + 60);
        record.resource_server = String::new();
        let base = serde_json::to_vec(&record).unwrap().len();
        record.resource_server = "r".repeat(SEALED_MAX_BYTES - base);
        let json = serde_json::to_vec(&record).unwrap();
        assert_eq!(json.len(), SEALED_MAX_BYTES);
        let (_, opened) = s.open(&s.seal(&json).unwrap()).unwrap();
        assert_eq!(opened.resource_server, record.resource_server);
    }
}

//! Passwords (Argon2id) and bearer tokens.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// How long a login lasts: a working day.
pub(crate) const TOKEN_LIFETIME: Duration = Duration::from_hours(8);

/// Failed logins of one name within this window count towards the lockout.
pub(crate) const LOCKOUT_WINDOW: Duration = Duration::from_mins(15);
/// Failed logins within the window after which a name is locked out until it ends.
pub(crate) const LOCKOUT_AFTER: u32 = 5;

/// A logged-in user.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub name: String,
    pub role: String,
    pub manager_id: Option<String>,
    pub branch_id: Option<String>,
    pub approval_level: i64,
    /// The dashboard sends it back in `X-CSRF-Token` with every change it asks for.
    pub csrf: String,
    pub expires: Instant,
}

impl Session {
    /// The account manager's book or branch this session is limited to, if any.
    pub(crate) fn scope(&self) -> Option<retain_store::Scope> {
        if self.role != "manager" {
            return None;
        }
        // An empty id (stored before ids were checked) would match every subscriber without one.
        let manager = self.manager_id.as_ref().filter(|m| !m.is_empty());
        let branch = self.branch_id.as_ref().filter(|b| !b.is_empty());
        Some(match (manager, branch) {
            (Some(m), _) => retain_store::Scope::Manager(m.clone()),
            (None, Some(b)) => retain_store::Scope::Branch(b.clone()),
            // A manager without either sees nobody rather than everybody.
            (None, None) => retain_store::Scope::Manager("\u{0}".into()),
        })
    }

    /// The session as the campaign loop knows an actor.
    pub(crate) fn actor(&self) -> retain_campaign::Actor {
        retain_campaign::Actor {
            name: self.name.clone(),
            role: retain_campaign::Role::from_code(&self.role)
                .unwrap_or(retain_campaign::Role::Store),
            level: self.approval_level,
        }
    }
}

/// The longest login name, in bytes: longer ones are refused before any work (no user has one).
pub(crate) const MAX_NAME_BYTES: usize = retain_store::MAX_NAME_BYTES;
/// The longest password, in bytes, that login accepts and `retain user add` sets.
pub const MAX_PASSWORD_BYTES: usize = 256;

/// Attempts per name (count, start of the window). An attempt counts as failed from the moment
/// it starts, before the password is checked, so attempts at the same time cannot all slip in
/// under the limit; a login that succeeds clears its name.
#[derive(Debug)]
pub(crate) struct Lockout {
    names: std::collections::HashMap<String, (u32, Instant)>,
    /// Names whose window has ended are dropped when the map reaches this size.
    prune_at: usize,
}

impl Default for Lockout {
    fn default() -> Self {
        Self {
            names: std::collections::HashMap::new(),
            prune_at: 1024,
        }
    }
}

impl Lockout {
    /// Counts an attempt of `name` as failed until it succeeds; or, when the name has failed
    /// [`LOCKOUT_AFTER`] times within the window, how long it must still wait.
    pub(crate) fn begin(&mut self, name: &str, now: Instant) -> Result<(), Duration> {
        let entry = self.names.entry(name.to_owned()).or_insert((0, now));
        if entry.1 + LOCKOUT_WINDOW <= now {
            *entry = (0, now);
        }
        if entry.0 >= LOCKOUT_AFTER {
            return Err(entry.1 + LOCKOUT_WINDOW - now);
        }
        entry.0 += 1;
        if self.names.len() >= self.prune_at {
            self.names
                .retain(|_, (_, since)| *since + LOCKOUT_WINDOW > now);
            self.prune_at = (self.names.len() * 2).max(1024);
        }
        Ok(())
    }

    pub(crate) fn succeeded(&mut self, name: &str) {
        self.names.remove(name);
    }
}

/// The hash a login of an unknown name is checked against, so that it takes as long as a
/// login of a known one and the answer's time does not tell which names exist. Made once, of a
/// random password no one knows, with the same parameters as [`hash_password`].
pub(crate) fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&new_password()).unwrap_or_default())
}

/// An Argon2id hash of `password` (PHC string).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches the stored hash.
#[must_use]
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A fresh random password of 16 letters and digits, for generated accounts.
#[must_use]
pub fn new_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

/// A fresh random token.
pub(crate) fn token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The dashboard's session cookie.
pub(crate) const COOKIE: &str = "retain_session";

/// The session token in the request's cookie, if any.
pub(crate) fn cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_counts_before_its_password_is_checked() {
        let mut l = Lockout::default();
        let t0 = Instant::now();
        // Five attempts begin before any ends: the sixth waits the window out.
        for _ in 0..LOCKOUT_AFTER {
            assert!(l.begin("ana", t0).is_ok());
        }
        assert_eq!(l.begin("ana", t0), Err(LOCKOUT_WINDOW));
        assert!(l.begin("li", t0).is_ok(), "another name is not affected");
        let later = t0 + LOCKOUT_WINDOW;
        assert!(l.begin("ana", later).is_ok(), "a new window");
        l.succeeded("ana");
        for _ in 0..LOCKOUT_AFTER {
            assert!(l.begin("ana", later).is_ok());
        }
    }

    #[test]
    fn a_manager_with_an_empty_id_sees_nobody() {
        let session = |manager: Option<&str>, branch: Option<&str>| Session {
            name: "wang".into(),
            role: "manager".into(),
            manager_id: manager.map(str::to_owned),
            branch_id: branch.map(str::to_owned),
            approval_level: 0,
            csrf: String::new(),
            expires: Instant::now(),
        };
        let nobody = Some(retain_store::Scope::Manager("\u{0}".into()));
        assert_eq!(session(Some(""), None).scope(), nobody);
        assert_eq!(session(None, Some("")).scope(), nobody);
        assert_eq!(
            session(Some(""), Some("NJ01")).scope(),
            Some(retain_store::Scope::Branch("NJ01".into()))
        );
        assert_eq!(
            session(Some("M1"), None).scope(),
            Some(retain_store::Scope::Manager("M1".into()))
        );
    }

    #[test]
    fn names_whose_window_ended_are_forgotten() {
        let mut l = Lockout::default();
        let t0 = Instant::now();
        for n in 0..1000 {
            l.begin(&format!("guess-{n}"), t0).unwrap();
        }
        let later = t0 + LOCKOUT_WINDOW;
        for n in 0..100 {
            l.begin(&format!("other-{n}"), later).unwrap();
        }
        assert!(l.names.len() < 200, "{}", l.names.len());
    }

    #[test]
    fn the_dummy_hash_is_made_once_and_matches_no_password() {
        let hash = dummy_hash();
        assert!(std::ptr::eq(hash, dummy_hash()));
        assert!(hash.starts_with("$argon2id$"));
        assert!(!verify_password("", hash));
    }
}

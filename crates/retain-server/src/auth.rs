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
        Some(match (&self.manager_id, &self.branch_id) {
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

/// Failed logins per name: (count, start of the window).
#[derive(Debug, Default)]
pub(crate) struct Lockout(std::collections::HashMap<String, (u32, Instant)>);

impl Lockout {
    /// How long `name` must still wait, if it is locked out.
    pub(crate) fn wait(&self, name: &str, now: Instant) -> Option<Duration> {
        let (n, since) = self.0.get(name)?;
        let end = *since + LOCKOUT_WINDOW;
        (*n >= LOCKOUT_AFTER && end > now).then(|| end - now)
    }

    pub(crate) fn failed(&mut self, name: &str, now: Instant) {
        let entry = self.0.entry(name.to_owned()).or_insert((0, now));
        if entry.1 + LOCKOUT_WINDOW <= now {
            *entry = (0, now);
        }
        entry.0 += 1;
    }

    pub(crate) fn succeeded(&mut self, name: &str) {
        self.0.remove(name);
    }
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

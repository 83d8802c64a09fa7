//! Publisher authentication from the htpasswd-like USERS_FILE (spec 6.3).
//!
//! Structure: `Users { guest: bool, logins: Vec<(login, hash)> }` (sorted by login).
//! Hashes are checked with the system crypt(3) (libxcrypt: DES, `$1$`, `$5$`, `$6$`,
//! `$2b$`/`$2y$`), the function the original calls, behind one `unsafe` FFI call.
//! Uses: nothing internal.

use std::ffi::{CStr, CString};

#[derive(Debug, Default, Clone)]
pub struct Users {
    guest: bool,
    logins: Vec<(String, String)>,
}

/// Why a request was refused; the Display text is the original's reply body.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthError {
    UnknownLogin(String),
    InvalidPassword(String),
    GuestDenied,
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::UnknownLogin(l) => write!(f, "unknown login: {l}"),
            AuthError::InvalidPassword(l) => write!(f, "invalid password for login: {l}"),
            AuthError::GuestDenied => f.write_str("access denied for guest user"),
        }
    }
}

impl Users {
    /// Parses the file text; returns the warnings to log.
    pub fn parse(text: &str) -> (Users, Vec<String>) {
        let mut users = Users::default();
        let mut warnings = Vec::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default().trim();
            let Some((login, hash)) = line.split_once(':') else {
                continue;
            };
            if login.is_empty() {
                users.guest = true;
                continue;
            }
            if !login.bytes().all(|b| b.is_ascii_alphanumeric()) {
                warnings.push(format!(
                    "Warning: login \"{login}\" is not alphanumeric, skipped."
                ));
                continue;
            }
            users.logins.retain(|(l, _)| l != login);
            users.logins.push((login.to_owned(), hash.to_owned()));
        }
        users.logins.sort();
        (users, warnings)
    }

    pub fn guest_allowed(&self) -> bool {
        self.guest
    }

    /// Checks a request's credentials (`None`: no `login:password@` given).
    pub fn check(&self, creds: Option<(&str, &[u8])>) -> Result<(), AuthError> {
        let Some((login, password)) = creds else {
            return if self.guest {
                Ok(())
            } else {
                Err(AuthError::GuestDenied)
            };
        };
        let Ok(i) = self.logins.binary_search_by(|(l, _)| l.as_str().cmp(login)) else {
            return Err(AuthError::UnknownLogin(login.to_owned()));
        };
        let hash = self.logins.get(i).map_or("", |(_, h)| h.as_str());
        if verify(password, hash) {
            Ok(())
        } else {
            Err(AuthError::InvalidPassword(login.to_owned()))
        }
    }
}

/// Size of libxcrypt's `struct crypt_data` (crypt.h: CRYPT_DATA_INTERNAL_SIZE + output).
const CRYPT_DATA_SIZE: usize = 32768;

#[link(name = "crypt")]
extern "C" {
    fn crypt_r(
        key: *const libc::c_char,
        salt: *const libc::c_char,
        data: *mut libc::c_void,
    ) -> *mut libc::c_char;
}

/// `crypt(password, hash) == hash`, compared in constant time.
pub fn verify(password: &[u8], hash: &str) -> bool {
    let (Ok(key), Ok(salt)) = (CString::new(password), CString::new(hash)) else {
        return false;
    };
    if hash.is_empty() {
        return false;
    }
    // crypt_r's work area must start zeroed; the reentrant form keeps tests (threads) safe.
    let mut data = vec![0u8; CRYPT_DATA_SIZE];
    // SAFETY: key and salt are valid NUL-terminated strings; `data` is a zeroed buffer of
    // the size of struct crypt_data; the result points into `data`, copied before it drops.
    let out = unsafe {
        let p = crypt_r(key.as_ptr(), salt.as_ptr(), data.as_mut_ptr().cast());
        if p.is_null() {
            return false;
        }
        CStr::from_ptr(p).to_bytes().to_vec()
    };
    constant_time_eq(&out, hash.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_guest_logins_and_warnings() {
        let (u, w) =
            Users::parse(":\n# comment\nuser:32qjML0Qsbo8o # trailing\nbad_login:x\nnocolon\n");
        assert!(u.guest_allowed());
        assert_eq!(
            w,
            ["Warning: login \"bad_login\" is not alphanumeric, skipped."]
        );
        assert_eq!(u.check(None), Ok(()));
        assert_eq!(u.check(Some(("user", b"password"))), Ok(()));
        assert_eq!(
            u.check(Some(("user", b"wrong"))),
            Err(AuthError::InvalidPassword("user".into()))
        );
        assert_eq!(
            u.check(Some(("unk", b"pass"))),
            Err(AuthError::UnknownLogin("unk".into()))
        );
        let (u, _) = Users::parse("user:32qjML0Qsbo8o\n");
        assert_eq!(u.check(None), Err(AuthError::GuestDenied));
        assert_eq!(
            AuthError::UnknownLogin("unk".into()).to_string(),
            "unknown login: unk"
        );
    }

    #[test]
    fn des_fixture_of_the_original() {
        assert!(verify(b"password", "32qjML0Qsbo8o"));
        assert!(!verify(b"passwore", "32qjML0Qsbo8o"));
        assert!(!verify(b"pass\0word", "32qjML0Qsbo8o"));
        assert!(!verify(b"password", ""));
    }
}

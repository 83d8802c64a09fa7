//! Publisher authentication from the htpasswd-like USERS_FILE (spec 6.3).
//!
//! Structure: `Users { guest: bool, logins: Vec<(login, hash)> }` (sorted by login).
//! A stored hash is checked by its scheme, so every hash an htpasswd file made today may
//! hold works:
//! * `$apr1$` (Apache's MD5: the MD5-crypt algorithm with its own magic) and `{SHA}`
//!   (base64 of SHA-1, `htpasswd -s`) are computed here, on RustCrypto's `md-5` and `sha1`;
//! * everything else goes to the system crypt(3) (libxcrypt: DES, `$1$`, `$5$`, `$6$`,
//!   `$2a$`/`$2b$`/`$2y$`), the function the original calls, behind one `unsafe` FFI call.
//!
//! Every comparison of a computed hash with the stored one is constant-time.
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
    /// `parse_file` for a text without a path; warnings name it `USERS_FILE`.
    pub fn parse(text: &str) -> (Users, Vec<String>) {
        Users::parse_file(text, "USERS_FILE")
    }

    /// Parses the file text; returns the warnings to log, each naming `file:line` (`file`
    /// is the path as the warnings should show it). A line without a colon and a login that
    /// is not alphanumeric are skipped with a warning; blank and comment lines silently.
    pub fn parse_file(text: &str, file: &str) -> (Users, Vec<String>) {
        let mut users = Users::default();
        let mut warnings = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let at = index + 1;
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let Some((login, hash)) = line.split_once(':') else {
                // The line is not echoed: it may be a password or a hash.
                warnings.push(format!(
                    "Warning: {file}:{at}: line without a colon (expected login:hash), skipped."
                ));
                continue;
            };
            if login.is_empty() {
                users.guest = true;
                continue;
            }
            if !login.bytes().all(|b| b.is_ascii_alphanumeric()) {
                warnings.push(format!(
                    "Warning: {file}:{at}: login \"{login}\" is not alphanumeric, skipped."
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

/// Whether `password` matches the stored `hash` (any supported scheme), in constant time.
pub fn verify(password: &[u8], hash: &str) -> bool {
    // A C string cannot hold NUL; refuse it on every path, as crypt(3) would have to.
    if hash.is_empty() || password.contains(&0) {
        return false;
    }
    // Compat: the original's crypt(3) does not know `$apr1$` or `{SHA}` (spec 6.3); we add
    // them because `htpasswd` writes `$apr1$` by default and `-s` writes `{SHA}`.
    if let Some(rest) = hash.strip_prefix(APR1_MAGIC) {
        return constant_time_eq(
            md5_crypt(password, rest, APR1_MAGIC).as_bytes(),
            hash.as_bytes(),
        );
    }
    if let Some(b64) = hash.strip_prefix("{SHA}") {
        use sha1::Digest as _;
        let digest = sha1::Sha1::digest(password);
        return constant_time_eq(base64(&digest).as_bytes(), b64.as_bytes());
    }
    crypt(password, hash).is_some_and(|out| constant_time_eq(&out, hash.as_bytes()))
}

/// `crypt_r(password, hash)`, or `None` when crypt(3) refuses the setting.
fn crypt(password: &[u8], hash: &str) -> Option<Vec<u8>> {
    let (Ok(key), Ok(salt)) = (CString::new(password), CString::new(hash)) else {
        return None;
    };
    // crypt_r's work area must start zeroed; the reentrant form keeps tests (threads) safe.
    let mut data = vec![0u8; CRYPT_DATA_SIZE];
    // SAFETY: key and salt are valid NUL-terminated strings; `data` is a zeroed buffer of
    // the size of struct crypt_data; the result points into `data`, copied before it drops.
    unsafe {
        let p = crypt_r(key.as_ptr(), salt.as_ptr(), data.as_mut_ptr().cast());
        if p.is_null() {
            return None;
        }
        Some(CStr::from_ptr(p).to_bytes().to_vec())
    }
}

const APR1_MAGIC: &str = "$apr1$";

/// The crypt(3) alphabet: `./0-9A-Za-z`, used by MD5-crypt's output.
const CRYPT64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// MD5-crypt (Poul-Henning Kamp's algorithm, as FreeBSD `$1$` and Apache `$apr1$`):
/// `<magic><salt>$<22 chars>`. `setting` is the text after the magic; its salt ends at the
/// next `$` and is at most 8 bytes.
fn md5_crypt(password: &[u8], setting: &str, magic: &str) -> String {
    use md5::{Digest as _, Md5};
    let salt = setting.split('$').next().unwrap_or_default().as_bytes();
    let salt = salt.get(..8).unwrap_or(salt);

    let alt = Md5::new()
        .chain_update(password)
        .chain_update(salt)
        .chain_update(password)
        .finalize();
    let mut ctx = Md5::new()
        .chain_update(password)
        .chain_update(magic)
        .chain_update(salt);
    for chunk in password.chunks(16) {
        ctx.update(alt.get(..chunk.len()).unwrap_or_default());
    }
    // One byte per bit of the length: NUL for a set bit, the first password byte otherwise.
    let first = password.get(..1).unwrap_or_default();
    let mut n = password.len();
    while n > 0 {
        ctx.update(if n & 1 == 1 { &[0u8][..] } else { first });
        n >>= 1;
    }
    let mut fin = ctx.finalize();
    // The 1000 rounds that make it slow.
    for i in 0..1000 {
        let mut round = Md5::new();
        if i % 2 == 1 {
            round.update(password);
        } else {
            round.update(fin);
        }
        if i % 3 != 0 {
            round.update(salt);
        }
        if i % 7 != 0 {
            round.update(password);
        }
        if i % 2 == 1 {
            round.update(fin);
        } else {
            round.update(password);
        }
        fin = round.finalize();
    }

    let mut out = String::with_capacity(magic.len() + salt.len() + 23);
    out.push_str(magic);
    out.push_str(&String::from_utf8_lossy(salt));
    out.push('$');
    let b = |i: usize| u32::from(fin[i]);
    for (a, m, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        push_crypt64(&mut out, (b(a) << 16) | (b(m) << 8) | b(c), 4);
    }
    push_crypt64(&mut out, b(11), 2);
    out
}

/// Appends the low `6 * n` bits of `v`, least significant group first.
fn push_crypt64(out: &mut String, mut v: u32, n: usize) {
    for _ in 0..n {
        out.push(char::from(CRYPT64[(v & 0x3f) as usize]));
        v >>= 6;
    }
}

/// Standard base64 (RFC 4648, with `=` padding), as `htpasswd -s` writes it.
fn base64(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len().div_ceil(3) * 4);
    crate::base64::encode(bytes, &mut out);
    // The alphabet is ASCII.
    String::from_utf8_lossy(&out).into_owned()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    // Only the lengths (public: the stored hash's) leak; black_box keeps the optimiser from
    // turning the fold into an early exit.
    std::hint::black_box(a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y))) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_guest_logins_and_warnings() {
        let (u, w) = Users::parse_file(
            ":\n# comment\nuser:32qjML0Qsbo8o # trailing\nbad_login:x\nnocolon\n",
            "/etc/users",
        );
        assert!(u.guest_allowed());
        assert_eq!(
            w,
            [
                "Warning: /etc/users:4: login \"bad_login\" is not alphanumeric, skipped.",
                "Warning: /etc/users:5: line without a colon (expected login:hash), skipped."
            ]
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

    /// Each hash was made by the real tool named beside it (Debian apache2-utils 2.4 and
    /// OpenSSL 3.0); the password is `password` unless the row says otherwise.
    const MADE_BY_TOOLS: &[(&str, &str, &str)] = &[
        // htpasswd -nbm user password
        ("password", "$apr1$Fq3i2FRh$2w0.wto5Q3MebrkXhmNtg.", "htpasswd -m"),
        // openssl passwd -apr1 -salt 8charsal 'p4ss!wd~'
        ("p4ss!wd~", "$apr1$8charsal$jIyFbjh.RMHiVwaM8w4fg/", "openssl -apr1"),
        // openssl passwd -apr1 -salt x ''
        ("", "$apr1$x$tMwYqBfQwi3FYAr0aJc8M/", "openssl -apr1, empty"),
        // openssl passwd -apr1 -salt abcdefgh 'a password longer than sixteen bytes...'
        (
            "a password longer than sixteen bytes...",
            "$apr1$abcdefgh$wpbHXxc8P9KXSGoMcGl1E1",
            "openssl -apr1, long",
        ),
        // htpasswd -nbs user password
        ("password", "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "htpasswd -s"),
        // htpasswd -nbs user ''
        ("", "{SHA}2jmj7l5rSw0yVb/vlWAYkK/YBwk=", "htpasswd -s, empty"),
        // htpasswd -nbB -C 5 user password
        (
            "password",
            "$2y$05$xzzPRePHbbe83zwspy2iHOQIcZLhQ0tfO81xQzWy5bBn5C4bZ8fIy",
            "htpasswd -B",
        ),
        // htpasswd -nbd user password
        ("password", "hxRAEHLrFdI02", "htpasswd -d"),
        // openssl passwd -1 -salt saltsalt password
        ("password", "$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/", "openssl -1"),
        // openssl passwd -5 -salt saltsalt password
        (
            "password",
            "$5$saltsalt$gOjOtoMpVhru2uyjeJSEc/JaLQWOXMNmlOnj6T4AtC.",
            "openssl -5",
        ),
        // openssl passwd -6 -salt saltsalt password
        (
            "password",
            "$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/",
            "openssl -6",
        ),
        // Openwall crypt_blowfish's published test vectors for the $2a$ and $2b$ prefixes.
        (
            "U*U",
            "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
            "bcrypt $2a$",
        ),
        (
            "U*U",
            "$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
            "bcrypt $2b$",
        ),
    ];

    #[test]
    fn every_scheme_accepts_its_password_and_refuses_others() {
        for (password, hash, tool) in MADE_BY_TOOLS {
            assert!(verify(password.as_bytes(), hash), "{tool}: {hash}");
            // Not `password` plus a suffix: DES reads only the first 8 bytes (a known limit).
            for wrong in ["", "passwore", "Password", "passwor", "U*V"] {
                if wrong != *password {
                    assert!(!verify(wrong.as_bytes(), hash), "{tool} took {wrong:?}");
                }
            }
            let mut nul = password.as_bytes().to_vec();
            nul.push(0);
            assert!(!verify(&nul, hash), "{tool} took a NUL suffix");
        }
    }

    #[test]
    fn damaged_hashes_never_match() {
        for hash in [
            "$apr1$",
            "$apr1$Fq3i2FRh",
            "$apr1$Fq3i2FRh$",
            "$apr1$Fq3i2FRh$2w0.wto5Q3MebrkXhmNtg",
            "$apr1$Fq3i2FRh$2w0.wto5Q3MebrkXhmNtg.x",
            "{SHA}",
            "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g",
            "{sha}W6ph5Mm5Pz8GgiULbPgzG37mj9g=",
            "$1$",
            "$6$",
            "$2y$05$",
            "*",
            "*0",
            "*1",
            "!",
            "x",
            "plaintext",
        ] {
            for password in ["", "password", "plaintext"] {
                assert!(
                    !verify(password.as_bytes(), hash),
                    "{hash} took {password:?}"
                );
            }
        }
    }

    /// Our MD5-crypt with the `$1$` magic must equal libxcrypt's `$1$` for every length
    /// around the 16-byte block and bit-loop edges, and every salt length.
    #[test]
    fn md5_crypt_matches_system_crypt() {
        let pool = b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ!~";
        for len in 0..40 {
            let password: Vec<u8> = (0..len).map(|i| pool[(i * 7 + len) % pool.len()]).collect();
            for salt in ["", "a", "abcd", "abcdefgh", "abcdefghij", "ab$cd"] {
                let ours = md5_crypt(&password, salt, "$1$");
                let theirs = crypt(&password, &format!("$1${salt}")).expect("crypt $1$");
                assert_eq!(ours.as_bytes(), theirs, "len {len} salt {salt:?}");
                let apr = md5_crypt(&password, salt, APR1_MAGIC);
                assert!(verify(&password, &apr), "{apr}");
            }
        }
    }

    #[test]
    fn base64_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn constant_time_eq_compares_whole_slices() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"xbc", b"abc"));
    }

    #[test]
    fn users_file_with_every_scheme() {
        let text = MADE_BY_TOOLS
            .iter()
            .enumerate()
            .map(|(i, (_, hash, _))| format!("u{i}:{hash}\n"))
            .collect::<String>();
        let (u, w) = Users::parse(&text);
        assert!(w.is_empty());
        assert!(!u.guest_allowed());
        for (i, (password, _, tool)) in MADE_BY_TOOLS.iter().enumerate() {
            let login = format!("u{i}");
            assert_eq!(
                u.check(Some((&login, password.as_bytes()))),
                Ok(()),
                "{tool}"
            );
            assert_eq!(
                u.check(Some((&login, b"wrong"))),
                Err(AuthError::InvalidPassword(login.clone())),
                "{tool}"
            );
        }
    }
}

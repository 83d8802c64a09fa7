//! Typed configuration: the built-in defaults (`conf/dklab_realplexor.conf`, embedded), then
//! the override file named on the command line, evaluated by `perl` into one `%CONFIG` map
//! (remembering the file:line that set each key), checked by `validate` (type and range of
//! every known key) and then converted once into `Config`.
//!
//! Structure: `Config { typed fields..., values: ConfigMap }`; `values` keeps every key for
//! `$VAR` substitution in the IFRAME/SCRIPT templates. The static replies (IFRAME, SCRIPT)
//! and the WAIT header block are built here, at load time, never per request.
//! Uses: config/perl, config/validate, auth, httpdate.

mod addr_conflicts;
pub mod perl;
pub mod validate;
mod values;

use crate::auth::Users;
use crate::httpdate;
use perl::{ConfigMap, EvalOptions, Value};
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;
use validate::Origins;
use values::{addrs, count, get, num, secs, string, string_list, workers};

/// The defaults, shipped as `conf/dklab_realplexor.conf` and embedded so that the binary runs
/// from any directory.
pub const DEFAULT_CONF: &str = include_str!("../../conf/dklab_realplexor.conf");
const DEFAULT_IFRAME: &[u8] = include_bytes!("../../conf/dklab_realplexor.html");
const DEFAULT_SCRIPT: &[u8] = include_bytes!("../../conf/dklab_realplexor.js");
const DEFAULT_USERS: &[u8] = include_bytes!("../../conf/dklab_realplexor.htpasswd");

/// Keys the server knows; any other key is reported as a warning (it is still available to
/// `$VAR` substitution, which is how the JS_* keys are used).
pub const KNOWN_KEYS: &[&str] = &[
    "SU_USER",
    "WAIT_TIMEOUT",
    "WAIT_MAXLEN",
    "WAIT_ADDR",
    "IN_TIMEOUT",
    "IN_MAXLEN",
    "IN_ADDR",
    "ID_BINDINGS_SERVERS",
    "ID_BINDINGS_SERVER_NAME",
    "EVENT_CHAIN_LEN",
    "HOOK_CHECK_VISIBILITY",
    "OFFLINE_TIMEOUT",
    "MAX_DATA_FOR_ID",
    "CLEAN_ID_AFTER",
    "CHARSET",
    "USERS_FILE",
    "IFRAME_FILE",
    "IFRAME_ID",
    "SCRIPT_FILE",
    "SCRIPT_ID",
    "IDENTIFIER",
    "JS_MAX_BOUNCES",
    "JS_WAIT_RECONNECT_DELAY",
    "JS_WAIT_URI",
    "JS_DEBUG",
    "VERBOSITY",
    "MAX_MEM_MB",
    "ALLOWED_ORIGINS",
    "IFRAME_ORIGIN_AGENT_CLUSTER",
    "STREAM_PING",
    "COALESCE_MS",
    "CLUSTER_REDIS",
    "CLUSTER_PREFIX",
    "CLUSTER_MAXLEN",
    "WORKERS",
    "SNAPSHOT_FILE",
];

#[derive(Debug)]
pub enum ConfigError {
    Perl(perl::PerlError),
    Io {
        path: PathBuf,
        err: std::io::Error,
    },
    Conflict(addr_conflicts::Conflict),
    /// A value that does not fit its key; `at` is the `file:line` that set it.
    Invalid {
        key: &'static str,
        why: String,
        at: Option<String>,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Perl(e) => write!(f, "{e}"),
            ConfigError::Io { path, err } => write!(f, "Cannot read {}: {}", path.display(), err),
            ConfigError::Invalid { key, why, at } => match at {
                Some(at) => write!(f, "{at}: invalid {key}: {why}"),
                None => write!(f, "invalid {key}: {why}"),
            },
            ConfigError::Conflict(c) => write!(f, "{c}"),
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug)]
pub struct Config {
    pub su_user: String,
    /// None: no inactivity timeout (a value of 0).
    pub wait_timeout: Option<Duration>,
    pub wait_maxlen: usize,
    pub wait_addr: Vec<String>,
    /// None: no inactivity timeout. The C++ original honours IN_TIMEOUT; we do too.
    pub in_timeout: Option<Duration>,
    pub in_maxlen: usize,
    pub in_addr: Vec<String>,
    pub event_chain_len: usize,
    pub offline_timeout: Duration,
    pub max_data_for_id: usize,
    pub clean_id_after: Duration,
    pub charset: String,
    pub iframe_id: String,
    pub script_id: String,
    pub identifier: String,
    pub verbosity: u8,
    pub max_mem_mb: f64,
    /// Keep-alive pings on SSE and WebSocket connections (None: a value of 0, no pings;
    /// at least 100 ms).
    pub stream_ping: Option<Duration>,
    /// How long a long-poll listener is held after it registers, so that pushes arriving
    /// meanwhile share one reply (zero: answered at once, as the original).
    pub coalesce: Duration,
    /// Cluster mode's Redis (None: embedded mode, as the original).
    pub cluster: Option<crate::cluster::addr::Target>,
    pub cluster_prefix: String,
    pub cluster_maxlen: usize,
    /// Worker processes on this host (`auto`: one per CPU).
    pub workers: usize,
    /// Origins whose WAIT requests get CORS headers (`*`: any); empty keeps the original bytes.
    pub allowed_origins: Vec<String>,
    /// Where a graceful stop writes every queue and the next start reads it ('' = off).
    pub snapshot_file: String,
    /// The complete IFRAME reply (headers and substituted content).
    pub iframe_reply: Rc<[u8]>,
    /// The complete SCRIPT reply.
    pub script_reply: Rc<[u8]>,
    /// The header block sent when a WAIT connection registers (spec 4.4).
    pub wait_header: Rc<[u8]>,
    pub users: Users,
    /// Every key as evaluated, for `$VAR` substitution and reload comparison.
    pub values: ConfigMap,
}

/// A loaded config plus the lines the loader wants logged (the original's CONFIG: lines and
/// our warnings), in order.
pub struct Loaded {
    pub config: Config,
    pub notes: Vec<String>,
}

/// Where relative file names are looked up: the installation directory (the binary's, as
/// the original chdirs there), then the directory of the override file.
pub struct SearchDirs {
    pub install_dir: PathBuf,
    pub override_dir: Option<PathBuf>,
}

impl SearchDirs {
    fn resolve(&self, name: &str) -> Option<PathBuf> {
        let p = Path::new(name);
        if p.is_absolute() {
            return Some(p.to_path_buf());
        }
        std::iter::once(&self.install_dir)
            .chain(self.override_dir.as_ref())
            .map(|d| d.join(p))
            .find(|c| c.exists())
    }
}

/// Loads the defaults and then `override_path` (if it exists).
pub fn load(override_path: Option<&Path>, install_dir: &Path) -> Result<Loaded, ConfigError> {
    let mut notes = Vec::new();
    let mut values = ConfigMap::new();
    let default_path = install_dir.join("dklab_realplexor.conf");
    let default_name = default_path.to_string_lossy();
    let evaluated = perl::eval_file_with(
        DEFAULT_CONF,
        &default_name,
        &mut values,
        EvalOptions::default(),
    )
    .map_err(ConfigError::Perl)?;
    let mut origins = Origins::new();
    note_origins(&mut origins, &default_name, &evaluated);
    let mut override_dir = None;
    if let Some(path) = override_path {
        // Compat: the original resolves a relative path against its installation directory;
        // we try the current directory first, which is what a shell user means.
        let path = if path.is_relative() && !path.exists() && install_dir.join(path).exists() {
            install_dir.join(path)
        } else {
            path.to_path_buf()
        };
        // A path that exists but is no regular file (a directory, a device) is an error,
        // not a reason to start on the defaults.
        let exists = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => true,
            Ok(m) => {
                let why = if m.is_dir() {
                    "is a directory, not a config file"
                } else {
                    "is not a regular file"
                };
                let err = std::io::Error::other(why);
                return Err(ConfigError::Io { path, err });
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => false,
            Err(err) => return Err(ConfigError::Io { path, err }),
        };
        if exists {
            let abs = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            notes.push(format!(
                "CONFIG: appending configuration from {}",
                abs.display()
            ));
            let text = std::fs::read(&abs).map_err(|err| ConfigError::Io {
                path: abs.clone(),
                err,
            })?;
            let text = String::from_utf8_lossy(&text);
            // An override written like the default file (`%CONFIG = (...)`) changes the keys
            // it lists instead of wiping the defaults (with a warning).
            let options = EvalOptions {
                merge_hash_assignment: true,
            };
            let evaluated =
                perl::eval_file_with(&text, &abs.to_string_lossy(), &mut values, options)
                    .map_err(ConfigError::Perl)?;
            notes.extend(evaluated.warnings.iter().map(|w| format!("CONFIG: {w}")));
            note_origins(&mut origins, &abs.to_string_lossy(), &evaluated);
            override_dir = abs.parent().map(Path::to_path_buf);
        } else {
            notes.push(format!(
                "CONFIG: file {} does not exist, skipping",
                path.display()
            ));
        }
    }
    let dirs = SearchDirs {
        install_dir: install_dir.to_path_buf(),
        override_dir,
    };
    validate::check(&values, &origins)?;
    build(values, &dirs, &mut notes).map(|config| Loaded { config, notes })
}

/// Records which file and line set each key a file's evaluation reports.
fn note_origins(origins: &mut Origins, file: &str, evaluated: &perl::Evaluated) {
    for (key, line) in &evaluated.lines {
        origins.insert(key.clone(), (file.to_string(), *line));
    }
}

fn build(
    values: ConfigMap,
    dirs: &SearchDirs,
    notes: &mut Vec<String>,
) -> Result<Config, ConfigError> {
    for (k, v) in &values {
        if !KNOWN_KEYS.contains(&k.as_str()) && !k.starts_with("JS_") {
            notes.push(format!("CONFIG: unknown option {k}, ignored"));
        }
        if let Value::Code(_) = v {
            notes.push(format!(
                "CONFIG: {k} is Perl code, which this server does not run; ignored"
            ));
        }
    }
    let identifier = string(&values, "IDENTIFIER");
    if identifier.is_empty() {
        return Err(ConfigError::Invalid {
            key: "IDENTIFIER",
            why: "must not be empty".into(),
            at: None,
        });
    }
    let timeout = |key| -> Result<Option<Duration>, ConfigError> {
        let d = secs(&values, key)?;
        Ok((!d.is_zero()).then_some(d))
    };
    let charset = string(&values, "CHARSET");
    let verbosity = match values.get("VERBOSITY") {
        // Compat: a missing VERBOSITY means "most verbose" in the original.
        None | Some(Value::Undef) => 3,
        Some(v) => v.to_f64().clamp(0.0, 3.0) as u8,
    };
    // Spec 14: old https pages that rely on document.domain need both frames out of the
    // origin-keyed agent cluster; opt-in because it changes the reply bytes.
    let oac = get(&values, "IFRAME_ORIGIN_AGENT_CLUSTER").is_true();
    let iframe_extra = if oac {
        "Origin-Agent-Cluster: ?0\r\n"
    } else {
        ""
    };
    let iframe = load_static(
        &values,
        "IFRAME_FILE",
        DEFAULT_IFRAME,
        "text/html",
        &charset,
        dirs,
        iframe_extra,
    )?;
    let script = load_static(
        &values,
        "SCRIPT_FILE",
        DEFAULT_SCRIPT,
        "text/javascript",
        &charset,
        dirs,
        "",
    )?;
    let allowed_origins = string_list(&values, "ALLOWED_ORIGINS");
    let users_name = string(&values, "USERS_FILE");
    let users_text = read_named(
        &users_name,
        "dklab_realplexor.htpasswd",
        DEFAULT_USERS,
        dirs,
    )?;
    // Users-file warnings name the file as found, or the built-in copy.
    let users_shown = dirs.resolve(&users_name).map_or_else(
        || format!("{users_name} (built-in)"),
        |p| p.display().to_string(),
    );
    let (users, warnings) = Users::parse_file(&String::from_utf8_lossy(&users_text), &users_shown);
    notes.extend(warnings);
    let wait_header = format!(
        "HTTP/1.1 200 OK\r\nConnection: close\r\nCache-Control: no-store, no-cache, must-revalidate\r\n\
         Expires: Mon, 26 Jul 1997 05:00:00 GMT\r\nContent-Type: text/javascript; charset={charset}\r\n\r\n \r\n"
    );
    addr_conflicts::check_values(&values)?;
    Ok(Config {
        su_user: string(&values, "SU_USER"),
        wait_timeout: timeout("WAIT_TIMEOUT")?,
        wait_maxlen: count(&values, "WAIT_MAXLEN")?,
        wait_addr: addrs(&values, "WAIT_ADDR")?,
        in_timeout: timeout("IN_TIMEOUT")?,
        in_maxlen: count(&values, "IN_MAXLEN")?,
        in_addr: addrs(&values, "IN_ADDR")?,
        event_chain_len: count(&values, "EVENT_CHAIN_LEN")?,
        offline_timeout: secs(&values, "OFFLINE_TIMEOUT")?,
        max_data_for_id: count(&values, "MAX_DATA_FOR_ID")?,
        clean_id_after: secs(&values, "CLEAN_ID_AFTER")?,
        iframe_id: string(&values, "IFRAME_ID"),
        script_id: string(&values, "SCRIPT_ID"),
        identifier,
        verbosity,
        max_mem_mb: num(&values, "MAX_MEM_MB")?,
        allowed_origins,
        cluster: crate::cluster::addr::parse(&string(&values, "CLUSTER_REDIS")).map_err(|e| {
            ConfigError::Invalid {
                key: "CLUSTER_REDIS",
                why: e.to_string(),
                at: None,
            }
        })?,
        cluster_prefix: string(&values, "CLUSTER_PREFIX"),
        cluster_maxlen: count(&values, "CLUSTER_MAXLEN")?,
        workers: workers(&values)?,
        stream_ping: Some(secs(&values, "STREAM_PING")?)
            .filter(|d| !d.is_zero())
            .map(|d| d.max(Duration::from_millis(100))),
        coalesce: Duration::from_millis(count(&values, "COALESCE_MS")? as u64),
        snapshot_file: string(&values, "SNAPSHOT_FILE"),
        iframe_reply: iframe,
        script_reply: script,
        wait_header: Rc::from(wait_header.into_bytes()),
        users,
        charset,
        values,
    })
}

/// Reads a file named by a config value; the built-in copy serves the default name when no
/// such file exists on disk.
fn read_named(
    name: &str,
    default_name: &str,
    builtin: &[u8],
    dirs: &SearchDirs,
) -> Result<Vec<u8>, ConfigError> {
    match dirs.resolve(name) {
        Some(path) => std::fs::read(&path).map_err(|err| ConfigError::Io { path, err }),
        None if name == default_name => Ok(builtin.to_vec()),
        None => Err(ConfigError::Io {
            path: dirs.install_dir.join(name),
            err: std::io::Error::from(std::io::ErrorKind::NotFound),
        }),
    }
}

/// Builds a complete static reply (spec 4.2) for IFRAME_FILE or SCRIPT_FILE.
fn load_static(
    values: &ConfigMap,
    key: &'static str,
    builtin: &[u8],
    mime: &str,
    charset: &str,
    dirs: &SearchDirs,
    extra_headers: &str,
) -> Result<Rc<[u8]>, ConfigError> {
    let name = string(values, key);
    let default_name = if key == "IFRAME_FILE" {
        "dklab_realplexor.html"
    } else {
        "dklab_realplexor.js"
    };
    let (content, mtime) = match dirs.resolve(&name) {
        Some(path) => {
            let content = std::fs::read(&path).map_err(|err| ConfigError::Io {
                path: path.clone(),
                err,
            })?;
            let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            (content, mtime)
        }
        None => (
            read_named(&name, default_name, builtin, dirs)?,
            build_time(),
        ),
    };
    let body = substitute(&content, values);
    let mut reply = format!(
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: {mime}; charset={charset}\r\n\
         Last-Modified: {}\r\nExpires: Wed, 08 Jul 2037 22:53:52 GMT\r\nCache-Control: public\r\n{}\r\n",
        httpdate::format_e(mtime.unwrap_or(std::time::UNIX_EPOCH)),
        extra_headers
    )
    .into_bytes();
    reply.extend_from_slice(&body);
    Ok(Rc::from(reply))
}

/// The embedded files carry the time the process loaded them as their Last-Modified.
fn build_time() -> Option<std::time::SystemTime> {
    Some(std::time::SystemTime::now())
}

/// Replaces `$NAME` (`[A-Za-z][A-Za-z0-9_]*`) by the config value of that key, or
/// `undefined-NAME` (spec 4.2). A `$` before anything else stays as it is.
pub fn substitute(content: &[u8], values: &ConfigMap) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len());
    let mut i = 0;
    while let Some(&c) = content.get(i) {
        if c == b'$' && content.get(i + 1).is_some_and(u8::is_ascii_alphabetic) {
            let start = i + 1;
            let len = content
                .get(start..)
                .unwrap_or_default()
                .iter()
                .take_while(|&&b| b.is_ascii_alphanumeric() || b == b'_')
                .count();
            let name = String::from_utf8_lossy(content.get(start..start + len).unwrap_or_default());
            match values.get(name.as_ref()) {
                Some(v) => out.extend_from_slice(v.to_perl_string().as_bytes()),
                None => {
                    out.extend_from_slice(b"undefined-");
                    out.extend_from_slice(name.as_bytes());
                }
            }
            i = start + len;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_from_the_embedded_file() {
        let dir = std::env::temp_dir().join(format!("rplx-conf-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let l = load(None, &dir).unwrap();
        let c = l.config;
        assert_eq!(c.wait_addr, ["0.0.0.0:8088"]);
        assert_eq!(c.in_addr, ["127.0.0.1:10010"]);
        assert_eq!(c.wait_maxlen, 5120);
        assert_eq!(c.in_maxlen, 204800);
        assert_eq!(c.wait_timeout, Some(Duration::from_secs(300)));
        assert_eq!(c.in_timeout, Some(Duration::from_secs(20)));
        assert_eq!(c.offline_timeout, Duration::from_secs(30));
        assert_eq!(c.max_data_for_id, 30);
        assert_eq!(c.clean_id_after, Duration::from_secs(3600));
        assert_eq!(c.event_chain_len, 1000);
        assert_eq!(c.su_user, "nobody");
        assert_eq!(c.identifier, "identifier");
        assert_eq!(c.verbosity, 3);
        assert!(c.users.guest_allowed());
        assert!(c.iframe_reply.starts_with(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/html; charset=utf-8\r\n"
        ));
        assert!(l.notes.is_empty(), "{:?}", l.notes);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn override_file_and_relative_static_files() {
        let dir = std::env::temp_dir().join(format!("rplx-conf2-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        std::fs::write(
            dir.join("stub.html"),
            "IFRAME stub: [$IFRAME_ID] $NOPE $1.\n",
        )
        .unwrap();
        let conf = dir.join("o.conf");
        std::fs::write(
            &conf,
            "$CONFIG{WAIT_TIMEOUT} = 2;\n$CONFIG{IFRAME_FILE} = 'stub.html';\n$CONFIG{FOO} = 1;\nreturn 1;\n",
        )
        .unwrap();
        let l = load(Some(&conf), Path::new("/nonexistent-install-dir")).unwrap();
        assert!(l.notes[0].starts_with("CONFIG: appending configuration from "));
        assert!(l.notes.iter().any(|n| n.contains("unknown option FOO")));
        assert_eq!(l.config.wait_timeout, Some(Duration::from_secs(2)));
        assert!(l
            .config
            .iframe_reply
            .ends_with(b"\r\n\r\nIFRAME stub: [IFRAME] undefined-NOPE $1.\n"));
        let missing = load(Some(&dir.join("nope.conf")), &dir).unwrap();
        assert!(missing.notes[0].contains("does not exist, skipping"));
        std::fs::write(&conf, "$CONFIG{WAIT_TIMEOUT} = ;\n").unwrap();
        let err = load(Some(&conf), &dir).err().unwrap().to_string();
        assert!(err.contains("o.conf:1"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn substitution_rules() {
        let mut v = ConfigMap::new();
        v.insert("A".into(), Value::Int(1));
        v.insert("B_2".into(), Value::Num(0.01));
        let out = substitute(b"$A/$B_2/$Ax/$/ $1 $$A RegExp.$1", &v);
        assert_eq!(out, b"1/0.01/undefined-Ax/$/ $1 $1 RegExp.$1");
    }
}

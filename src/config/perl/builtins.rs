//! The functions a config file may call: File::Basename's `dirname`/`basename` (Unix rules)
//! and Cwd's `abs_path`/`realpath`, as the test fixtures' `dirname(abs_path(__FILE__))`
//! idiom uses them.
//!
//! Data shape: paths are `&str` in, `String` out; `call_builtin` takes evaluated argument
//! `Value`s and returns a `Value::Str`, or an error message for a wrong argument count.
//!
//! Uses: `super::Value` and `std` (`std::fs::canonicalize` and the current directory are
//! the only outside state read).

use super::Value;

/// File::Basename's fileparse on Unix: everything up to the last '/' is the directory
/// ("./" when there is none), the rest is the name.
fn fileparse(path: &str) -> (String, String) {
    match path.rsplit_once('/') {
        Some((dir, base)) => (format!("{dir}/"), base.to_string()),
        None => ("./".to_string(), path.to_string()),
    }
}

/// `s{(.)/*\z}{$1}s`: drops trailing slashes but never the first character.
fn strip_trailing_sep(s: &str) -> String {
    let trimmed = s.trim_end_matches('/');
    if trimmed.is_empty() {
        s.get(..1).unwrap_or("").to_string()
    } else {
        trimmed.to_string()
    }
}

/// File::Basename::dirname on Unix: "/a/b/c" -> "/a/b", "/a/b/" -> "/a", "a" -> ".",
/// "/" -> "/".
pub(super) fn dirname(path: &str) -> String {
    let (dir, base) = fileparse(path);
    let dir = strip_trailing_sep(&dir);
    if base.is_empty() {
        strip_trailing_sep(&fileparse(&dir).0)
    } else {
        dir
    }
}

/// File::Basename::basename on Unix, with its optional list of suffixes to remove.
pub(super) fn basename(path: &str, suffixes: &[String]) -> String {
    let (dir, mut base) = fileparse(&strip_trailing_sep(path));
    let mut tail = String::new();
    for suffix in suffixes {
        if let Some(stem) = base.strip_suffix(suffix.as_str()) {
            tail = format!("{suffix}{tail}");
            base = stem.to_string();
        }
    }
    if base.is_empty() && !tail.is_empty() {
        base = tail;
    }
    if base.is_empty() {
        base = dir;
    }
    base
}

/// Cwd::abs_path: the canonical path when it exists. Perl's realpath also accepts a missing
/// last component, so the parent is canonicalised next; failing that, the path is made
/// absolute and normalised lexically rather than giving up.
pub(super) fn abs_path(path: &str) -> String {
    if let Ok(real) = std::fs::canonicalize(path) {
        return real.to_string_lossy().into_owned();
    }
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        match std::env::current_dir() {
            Ok(cwd) => format!("{}/{path}", cwd.to_string_lossy()),
            Err(_) => path.to_string(),
        }
    };
    let normal = normalize_path(&joined);
    if let Some((dir, name)) = normal.rsplit_once('/') {
        if !name.is_empty() {
            let dir = if dir.is_empty() { "/" } else { dir };
            if let Ok(real) = std::fs::canonicalize(dir) {
                let real = real.to_string_lossy();
                let sep = if real.ends_with('/') { "" } else { "/" };
                return format!("{real}{sep}{name}");
            }
        }
    }
    normal
}

/// Removes "." and empty components and resolves ".." without touching the file system.
pub(super) fn normalize_path(p: &str) -> String {
    let absolute = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for component in p.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let body = parts.join("/");
    if absolute {
        format!("/{body}")
    } else if body.is_empty() {
        ".".to_string()
    } else {
        body
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Builtin {
    Dirname,
    Basename,
    AbsPath,
}

/// The only functions a config may call: the ones the test fixtures import.
pub(super) fn builtin(name: &str) -> Option<Builtin> {
    match name {
        "dirname" | "File::Basename::dirname" => Some(Builtin::Dirname),
        "basename" | "File::Basename::basename" => Some(Builtin::Basename),
        "abs_path" | "realpath" | "Cwd::abs_path" | "Cwd::realpath" => Some(Builtin::AbsPath),
        _ => None,
    }
}

pub(super) fn call_builtin(f: Builtin, name: &str, args: &[Value]) -> Result<Value, String> {
    let args: Vec<String> = args.iter().map(Value::to_perl_string).collect();
    let bad_count = || format!("{name}() got {} arguments", args.len());
    let s = match (f, args.as_slice()) {
        (Builtin::Dirname, [p]) => dirname(p),
        (Builtin::Basename, [p, suffixes @ ..]) => basename(p, suffixes),
        (Builtin::AbsPath, []) => abs_path("."),
        (Builtin::AbsPath, [p]) => abs_path(p),
        _ => return Err(bad_count()),
    };
    Ok(Value::Str(s))
}

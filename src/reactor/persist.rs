//! SNAPSHOT_FILE in the worker: loading it once at start (before the loop serves anyone) and
//! writing it when the loop ends (SIGTERM/SIGINT, a MAX_MEM_MB recycle, a restart after
//! SIGHUP), so that a graceful restart loses nothing without Redis.
//!
//! Writing goes to a temporary file in the same directory, which is fsynced and renamed
//! over SNAPSHOT_FILE, then the directory is fsynced: a crash while writing leaves the
//! previous snapshot whole. Loading parses and checks the whole file first
//! (`snapshot::decode`) and applies it only if all of it is sound; a missing, truncated,
//! foreign or edited file is logged (file, what is wrong) and the server starts empty. The
//! file is not deleted after loading: the next graceful stop replaces it.
//!
//! Structure: no state of its own; the file name is `Config::snapshot_file`, or the
//! `REALPLEXOR_SNAPSHOT_FILE` environment variable when the key is empty (how the shipped
//! service files turn it on without touching the admin's config).
//! Uses: snapshot, storage (persist), cursor, logging.

use super::*;
use crate::snapshot;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// The environment variable that names the snapshot file when the config does not.
pub const SNAPSHOT_ENV: &str = "REALPLEXOR_SNAPSHOT_FILE";

/// The snapshot file to use, if any.
pub fn snapshot_path(cfg: &Config) -> Option<PathBuf> {
    // Cluster mode keeps everything in the shared log (a restarted worker catches up from
    // it); a snapshot per worker would only be stale state beside it.
    if cfg.cluster.is_some() {
        return None;
    }
    let name = match cfg.snapshot_file.as_str() {
        "" => std::env::var(SNAPSHOT_ENV).unwrap_or_default(),
        s => s.to_string(),
    };
    (!name.is_empty()).then(|| PathBuf::from(name))
}

fn wall_ms() -> u64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Reactor {
    /// Loads SNAPSHOT_FILE into the (empty) storage; logs what happened.
    pub fn load_snapshot(&mut self) {
        let Some(path) = snapshot_path(&self.cfg) else {
            return;
        };
        let t0 = Instant::now();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                rlog!(
                    Info,
                    self.storage.counts(),
                    "snapshot: {} does not exist, starting empty",
                    path.display()
                );
                return;
            }
            Err(e) => {
                rlog!(
                    Warn,
                    self.storage.counts(),
                    "snapshot: cannot read {}: {e}; starting empty",
                    path.display()
                );
                return;
            }
        };
        let img = match snapshot::decode(&bytes) {
            Ok(img) => img,
            Err(snapshot::Bad(why)) => {
                rlog!(
                    Warn,
                    self.storage.counts(),
                    "snapshot: {} is unusable ({why}); starting empty",
                    path.display()
                );
                return;
            }
        };
        drop(bytes);
        if let Some(last) = &img.last_cursor {
            self.cursors.raise_floor(last);
        }
        let n = self
            .storage
            .restore(img, Instant::now(), wall_ms(), &self.limits);
        rlog!(
            Info,
            self.storage.counts(),
            "snapshot: loaded {} ids, {} messages ({} bodies), {} events, {} forgotten-id records from {} in {:.1} ms; {} ids expired while down",
            n.queues,
            n.items,
            n.messages,
            n.events,
            n.cleaned,
            path.display(),
            ms(t0.elapsed()),
            n.expired
        );
    }

    /// Writes SNAPSHOT_FILE (when configured); logs the outcome. Call when the loop ended.
    pub fn save_snapshot(&mut self) {
        let Some(path) = snapshot_path(&self.cfg) else {
            return;
        };
        let t0 = Instant::now();
        let tmp = tmp_name(&path);
        match self.write_to(&path, &tmp) {
            Ok((n, bytes)) => rlog!(
                Info,
                self.storage.counts(),
                "snapshot: wrote {} ids, {} messages ({} bodies), {} events, {} forgotten-id records to {} ({} bytes) in {:.1} ms",
                n.queues,
                n.items,
                n.messages,
                n.events,
                n.cleaned,
                path.display(),
                bytes,
                ms(t0.elapsed())
            ),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                rlog!(
                    Warn,
                    self.storage.counts(),
                    "snapshot: cannot write {}: {e}; queued messages are lost",
                    path.display()
                );
            }
        }
    }

    fn write_to(&self, path: &Path, tmp: &Path) -> io::Result<(crate::storage::SnapCounts, u64)> {
        let file = File::create(tmp)?;
        let out = BufWriter::with_capacity(1 << 20, file);
        let (out, n, bytes) = self.storage.write_snapshot(
            out,
            &self.cursors.last(),
            Instant::now(),
            wall_ms(),
            &self.limits,
        )?;
        let mut file = out.into_inner().map_err(|e| e.into_error())?;
        file.flush()?;
        file.sync_all()?;
        drop(file);
        fs::rename(tmp, path)?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        File::open(dir)?.sync_all()?;
        Ok((n, bytes))
    }
}

/// `<file>.tmp.<pid>` beside the file (a rename within one directory is atomic).
fn tmp_name(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".tmp.{}", std::process::id()));
    PathBuf::from(name)
}

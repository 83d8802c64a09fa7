//! Process-level libc glue: the open-files limit and the switch to SU_USER.
//!
//! Uses: nothing internal.

use std::ffi::CString;

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the resulting soft limit.
pub fn raise_nofile_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct we own.
    unsafe {
        let mut rl: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return 0;
        }
        if rl.rlim_cur < rl.rlim_max {
            let want = libc::rlimit {
                rlim_cur: rl.rlim_max,
                rlim_max: rl.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                rl.rlim_cur = rl.rlim_max;
            }
        }
        rl.rlim_cur
    }
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Switches group and user to `name` (after the ports are bound).
pub fn switch_user(name: &str) -> Result<(), String> {
    let cname = CString::new(name).map_err(|_| format!("User {name} is not found"))?;
    // SAFETY: getpwnam returns NULL or a pointer to static storage that we read at once;
    // setgroups/setgid/setuid take plain values.
    unsafe {
        let pw = libc::getpwnam(cname.as_ptr());
        if pw.is_null() {
            return Err(format!("User {name} is not found"));
        }
        let (uid, gid) = ((*pw).pw_uid, (*pw).pw_gid);
        if libc::setgroups(1, &gid) != 0 || libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
            return Err(format!(
                "Cannot switch to user {name}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

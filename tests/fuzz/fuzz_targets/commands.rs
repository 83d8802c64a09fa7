//! IN line aux commands (spec 7): `commands::find` in both modes, then `describe` and
//! `answer` against an empty storage, as a guest and with a login.
#![no_main]

use libfuzzer_sys::fuzz_target;
use realplexor::commands::{answer, find};
use realplexor::storage::Storage;

fuzz_target!(|data: &[u8]| {
    let early = find(data, false);
    let at_eof = find(data, true);
    // A command followed by a blank line is also a command at EOF.
    if early.is_some() {
        assert!(at_eof.is_some());
    }
    if let Some(cmd) = at_eof {
        let _ = cmd.describe();
        let storage = Storage::new();
        let _ = answer(&cmd, &storage, None);
        let _ = answer(&cmd, &storage, Some("user"));
    }
});

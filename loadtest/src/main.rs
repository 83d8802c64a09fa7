//! realplexor-loadtest: see `lib.rs` for the layout and `--help` for the usage.

use realplexor_loadtest::{args, floor, run_scenario, suite, worker};
use std::io::{BufReader, Write};

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("worker") {
        realplexor_loadtest::raise_nofile();
        let stdin = std::io::stdin();
        let stdout = std::io::stdout();
        let code = match worker::worker_main(BufReader::new(stdin.lock()), stdout.lock()) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("realplexor-loadtest worker: {e}");
                1
            }
        };
        std::process::exit(code);
    }
    let opts = match args::parse(&argv) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("realplexor-loadtest: {e}");
            eprint!("{}", args::USAGE);
            std::process::exit(2);
        }
    };
    if opts.help {
        print!("{}", args::USAGE);
        return;
    }
    if opts.command == "floor-server" {
        realplexor_loadtest::raise_nofile();
        let conf = opts.conf.as_deref().unwrap_or_default();
        if let Err(e) = floor::serve_with(conf, opts.floor_fanout) {
            eprintln!("realplexor-loadtest floor-server: {e}");
            std::process::exit(1);
        }
        return;
    }
    let exe = std::env::current_exe().ok();
    let result = match opts.command.as_str() {
        "suite" => suite::run(&opts, exe.as_deref(), &argv),
        "report" => suite::rerender(&opts),
        _ => run_scenario(&opts, exe.as_deref()),
    };
    match result {
        Ok(v) => {
            let text = serde_json::to_string_pretty(&v).unwrap_or_default();
            if let Some(path) = &opts.out {
                if let Err(e) = std::fs::write(path, format!("{text}\n")) {
                    eprintln!("realplexor-loadtest: {path}: {e}");
                    std::process::exit(1);
                }
            }
            let _ = writeln!(std::io::stdout(), "{text}");
            if v["ok"] == serde_json::Value::Bool(false) {
                std::process::exit(3);
            }
        }
        Err(e) => {
            eprintln!("realplexor-loadtest: {e}");
            std::process::exit(1);
        }
    }
}

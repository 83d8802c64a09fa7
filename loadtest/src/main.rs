//! realplexor-loadtest: the bundled load generator (scenarios land with the loadtest issue).

fn main() {
    eprintln!("realplexor-loadtest: no scenario is implemented yet; see the loadtest issue");
    std::process::exit(2);
}

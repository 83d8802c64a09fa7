//! Hostile input: thousands of mutated config files never make the evaluator panic.

use super::*;

use crate::testutil::XorShift;

fn mutate(rng: &mut XorShift, seeds: &[&str]) -> Vec<u8> {
    const INTERESTING: &[u8] = b"{}[]()'\"$%@#;,=>\\\n qwx-*/.0123456789_eE=cut\xff\xc3\xa9";
    let mut data = seeds[rng.below(seeds.len())].as_bytes().to_vec();
    for _ in 0..1 + rng.below(6) {
        let len = data.len();
        match rng.below(6) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(len + 1);
                data.insert(i, INTERESTING[rng.below(INTERESTING.len())]);
            }
            2 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(16)).min(len);
                data.drain(a..b);
            }
            3 => data.truncate(rng.below(len + 1)),
            4 => {
                let other = seeds[rng.below(seeds.len())].as_bytes();
                let a = rng.below(other.len());
                let b = (a + rng.below(64)).min(other.len());
                let at = rng.below(len + 1);
                data.splice(at..at, other[a..b].iter().copied());
            }
            _ if len > 0 => {
                let a = rng.below(len);
                let b = (a + rng.below(32)).min(len);
                let chunk = data[a..b].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, chunk);
            }
            _ => {}
        }
    }
    data
}

#[test]
fn hostile_mutations_never_panic() {
    let seeds = [
            DEFAULTS_SHAPE,
            "$CONFIG{WAIT_ADDR} = [ '1.2.3.4:80' ];\nreturn 1;\n",
            "use File::Basename;\nuse Cwd 'abs_path';\n$CONFIG{IFRAME_FILE} = dirname(abs_path(__FILE__)) . \"/iframe_stub.html\";\n",
            "%CONFIG = (H => sub { my $x = shift; return $x->{id} ne \"}\"; }, N => -2 ** 3 % 5 x 2, Q => qq{a$CONFIG{H}b}, W => [qw(a b)]);\n",
            "=head1 X\n\n=cut\nmy $v = 0x1F . \"\\x{41}\\t$CONFIG{A}\"; our $w = q(a(b)c) x 3; $v .= $w; $CONFIG{V} = $v;\n__END__\njunk",
            "# plain\nWAIT_TIMEOUT = 60\nCHARSET = \"utf-8\"\n",
        ];
    let base = defaults();
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for round in 0..20_000 {
        let data = mutate(&mut rng, &seeds);
        let text = String::from_utf8_lossy(&data).into_owned();
        let mut config = base.clone();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            eval_file(&text, "/tmp/fuzz.conf", &mut config)
        }));
        match outcome {
            Err(_) => panic!("round {round}: eval_file panicked on {text:?}"),
            Ok(Err(e)) => assert!(
                e.line >= 1 && e.line <= text.split('\n').count() + 1,
                "round {round}: line {} out of range for {text:?}",
                e.line
            ),
            Ok(Ok(())) => {}
        }
    }
}

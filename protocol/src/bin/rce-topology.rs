//! Reads `topology.yaml` for shell scripts, so that no script parses YAML or repeats a language.
//!
//! `rce-topology languages`                 ids, one per line
//! `rce-topology image <id>`                the image reference (name:tag)
//! `rce-topology images`                    `<id> <image-ref> <build-dir>` per line

use rce_protocol::topology::Topology;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let topology = match Topology::load_default() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("rce-topology: {e}");
            return ExitCode::from(2);
        }
    };
    let lang = |id: &str| {
        topology.language(id).ok_or_else(|| {
            eprintln!("rce-topology: unknown language {id:?}");
            ExitCode::from(2)
        })
    };
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["languages"] => topology.languages.keys().for_each(|id| println!("{id}")),
        ["image", id] => match lang(id) {
            Ok(l) => println!("{}", l.image_ref()),
            Err(code) => return code,
        },
        ["images"] => {
            for l in topology.all_languages() {
                println!("{} {} {}", l.id, l.image_ref(), l.build);
            }
        }
        _ => {
            eprintln!("usage: rce-topology languages | image <id> | images");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

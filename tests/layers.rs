//! The layer diagram of `src/lib.rs` is checked, not only drawn: a module may use only modules
//! of a lower layer (`crate::X` paths in code; comments and doc links are not dependencies).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each library module's layer, bottom first. A module may import only strictly lower layers,
/// so two modules of one layer never import each other.
const LAYERS: &[(&str, u32)] = &[
    ("assets", 0),
    ("party", 0),
    ("prg", 0),
    ("ring", 1),
    ("fss", 2),
    ("net", 2),
    ("backend", 3),
    ("mpc", 4),
    ("error", 5),
    ("model", 6),
    ("fl", 7),
    ("nn", 7),
    ("session", 7),
    ("finetune", 8),
];

fn layer(module: &str) -> Option<u32> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|&(_, l)| l)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The `crate::X` modules a source text uses outside comments.
fn crate_uses(text: &str) -> BTreeSet<String> {
    let mut uses = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let tail = &rest[at + "crate::".len()..];
            let name: String =
                tail.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            // The crate root re-exports the aggregated error as `crate::Error` / `crate::Result`.
            let name = if name == "Error" || name == "Result" { "error".to_string() } else { name };
            if !name.is_empty() {
                uses.insert(name);
            }
            rest = tail;
        }
    }
    uses
}

#[test]
fn lower_layers_never_import_higher_ones() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    let mut checked = 0;
    for file in &files {
        let rel = file.strip_prefix(&src).expect("under src/");
        let first = rel.components().next().expect("non-empty path");
        let module = first.as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
        // The crate root and the binary (main.rs, cli/) sit above every layer.
        if matches!(module.as_str(), "lib" | "main" | "cli") {
            continue;
        }
        let Some(own) = layer(&module) else {
            violations.push(format!("{}: module `{module}` has no layer in LAYERS", rel.display()));
            continue;
        };
        let text = std::fs::read_to_string(file).expect("readable source");
        for used in crate_uses(&text) {
            if used == module {
                continue;
            }
            match layer(&used) {
                Some(l) if l < own => {}
                Some(l) => violations.push(format!(
                    "{}: `{module}` (layer {own}) uses `crate::{used}` (layer {l})",
                    rel.display()
                )),
                None => violations.push(format!(
                    "{}: uses `crate::{used}`, which has no layer in LAYERS",
                    rel.display()
                )),
            }
        }
        checked += 1;
    }
    assert!(checked > 50, "only {checked} files checked: is src/ where the test looks?");
    assert!(violations.is_empty(), "layering violations:\n{}", violations.join("\n"));
}

#[test]
fn the_checker_sees_an_upward_import() {
    let uses = crate_uses("use crate::mpc::PartyId; // crate::nn in a comment\n/// [x](crate::fl)");
    assert_eq!(uses.into_iter().collect::<Vec<_>>(), ["mpc"]);
}

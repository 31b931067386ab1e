//! The house rules a reader relies on: no import cycle between the module files of any crate of
//! the workspace, each helpdesk in one folder of `shared/src/helpdesk/`, and no source file
//! longer than [`MAX_LINES`] lines of non-test code unless its opening comment says why.
//!
//! An import is any `crate::…`, `super::…` or `self::…` path in a file (in `use` lines or inline,
//! including `use crate::a::{b, c::d}` groups), resolved to the longest module path that is a
//! file of the crate; a module's own ancestors do not count. Comments and string literals are
//! skipped. A cycle is a strongly connected set of more than one file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Every `.rs` file under `src` by module path (`a/b.rs` and `a/b/mod.rs` are both `a::b`).
fn modules(src: &Path) -> BTreeMap<Module, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("source directory").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    files
        .into_iter()
        .filter_map(|file| {
            let relative = file.strip_prefix(src).ok()?.with_extension("");
            let mut parts: Module = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.first().is_some_and(|p| p == "bin") {
                return None;
            }
            if parts
                .last()
                .is_some_and(|p| p == "mod" || p == "lib" || p == "main")
            {
                parts.pop();
            }
            Some((parts, file))
        })
        .collect()
}

/// `text` without comments, string and character literals (each replaced by a space).
fn strip(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            i += 2;
            out.push(' ');
        } else if c == 'r' && (next == Some('"') || next == Some('#')) {
            // Raw string: r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                match chars.get(j) {
                    None => break,
                    Some('"') if (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')) => {
                        j += 1 + hashes;
                        break;
                    }
                    _ => j += 1,
                }
            }
            i = j;
            out.push(' ');
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push(' ');
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            // 'x' (a lifetime has no closing quote after one character).
            i += 3;
            out.push(' ');
        } else if c == '\'' && next == Some('\\') {
            i += 2;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
            out.push(' ');
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths `text` refers to, as (root, segments): `crate::a::b` → ("crate", [a, b]); a group
/// `crate::a::{b, c::d}` adds one path per member.
fn references(text: &str) -> Vec<(String, Vec<String>)> {
    let bytes: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !is_ident(bytes[i - 1]);
        let root = ["crate", "super", "self"].into_iter().find(|r| {
            starts_word
                && text_at(&bytes, i, r)
                && text_at(&bytes, i + r.len(), "::")
                && bytes.get(i + r.len() + 2).is_none_or(|c| *c != ':')
        });
        let Some(root) = root else {
            i += 1;
            continue;
        };
        let mut j = i + root.len();
        let mut segments = Vec::new();
        while text_at(&bytes, j, "::") {
            j += 2;
            let start = j;
            while j < bytes.len() && is_ident(bytes[j]) {
                j += 1;
            }
            if j == start {
                break;
            }
            segments.push(bytes[start..j].iter().collect::<String>());
        }
        // A group: `::{ … }` after the segments.
        if text_at(&bytes, j, "{") {
            let mut depth = 0;
            let mut end = j;
            while end < bytes.len() {
                match bytes[end] {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                end += 1;
            }
            let inner: String = bytes[j + 1..end.min(bytes.len())].iter().collect();
            for item in inner.split([',', '{', '}']) {
                let item = item.split(" as ").next().unwrap_or_default().trim();
                if item.is_empty() || item == "self" || item == "*" {
                    continue;
                }
                let mut path = segments.clone();
                path.extend(item.split("::").map(|s| s.trim().to_string()));
                out.push((root.to_string(), path));
            }
            j = end;
        }
        out.push((root.to_string(), segments));
        i = j.max(i + 1);
    }
    out
}

fn text_at(chars: &[char], at: usize, s: &str) -> bool {
    s.chars()
        .enumerate()
        .all(|(k, c)| chars.get(at + k) == Some(&c))
}

/// The module file `root::segments` written in `here` resolves to: the longest prefix that is a
/// file of the crate.
fn resolve(
    modules: &BTreeMap<Module, PathBuf>,
    here: &Module,
    root: &str,
    segments: &[String],
) -> Option<Module> {
    let mut full: Module = match root {
        "crate" => Vec::new(),
        "super" => here[..here.len().saturating_sub(1)].to_vec(),
        _ => here.clone(),
    };
    let mut rest = segments.iter().peekable();
    // `super::super::…`
    while rest.peek().is_some_and(|s| s.as_str() == "super") {
        full.pop();
        rest.next();
    }
    full.extend(rest.cloned());
    (0..=full.len())
        .rev()
        .map(|n| full[..n].to_vec())
        .find(|m| modules.contains_key(m))
}

/// The import graph of the crate at `src`.
fn graph(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let modules = modules(src);
    let mut g = BTreeMap::new();
    for (module, file) in &modules {
        let text = strip(&std::fs::read_to_string(file).expect("source file"));
        let mut targets = BTreeSet::new();
        for (root, segments) in references(&text) {
            if let Some(t) = resolve(&modules, module, &root, &segments)
                && &t != module
                && !module.starts_with(&t)
            {
                targets.insert(t);
            }
        }
        g.insert(module.clone(), targets);
    }
    g
}

/// Strongly connected components of more than one module (Tarjan).
fn cycles(g: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct Tarjan<'a> {
        g: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on: BTreeSet<&'a Module>,
        next: usize,
        out: Vec<Vec<Module>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a Module) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            self.on.insert(v);
            for w in self.g.get(v).into_iter().flatten() {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on.remove(w);
                    component.push(w.clone());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.out.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    t.out
}

fn crates() -> Vec<PathBuf> {
    [
        "src",
        "shared/src",
        "functions/webhook/src",
        "functions/upsert/src",
        "functions/sync/src",
        "tools/coldstart/src",
    ]
    .iter()
    .map(|d| Path::new(ROOT).join(d))
    .collect()
}

#[test]
fn no_crate_has_an_import_cycle() {
    let mut found = Vec::new();
    for src in crates() {
        for cycle in cycles(&graph(&src)) {
            let names: Vec<String> = cycle.iter().map(|m| m.join("::")).collect();
            found.push(format!("{}: {}", src.display(), names.join(" → ")));
        }
    }
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

/// Lines of non-test code a file may hold without saying why.
const MAX_LINES: usize = 600;
/// What a longer file's opening comment says, followed by its reason.
const REASON: &str = "Longer than 600 lines because";

/// The lines of `text` before its test module (`#[cfg(test)]` at the start of a line).
fn code_lines(text: &str) -> usize {
    text.lines()
        .take_while(|l| !l.starts_with("#[cfg(test)]"))
        .count()
}

/// Whether a file is test code by its name (`tests.rs`, `*_tests.rs`).
fn is_test_file(path: &Path) -> bool {
    path.file_stem()
        .and_then(|s| s.to_str())
        .is_some_and(|s| s == "tests" || s.ends_with("_tests"))
}

/// The files of `src` over the limit whose opening comment gives no reason.
fn oversized(src: &Path) -> Vec<String> {
    modules(src)
        .into_values()
        .filter(|file| !is_test_file(file))
        .filter_map(|file| {
            let text = std::fs::read_to_string(&file).expect("source file");
            let lines = code_lines(&text);
            let opening: String = text
                .lines()
                .take_while(|l| l.starts_with("//!") || l.trim().is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            (lines > MAX_LINES && !opening.contains(REASON))
                .then(|| format!("{} ({lines} lines)", file.display()))
        })
        .collect()
}

#[test]
fn no_source_file_is_longer_than_the_limit_without_a_reason() {
    let found: Vec<String> = crates().iter().flat_map(|src| oversized(src)).collect();
    assert!(
        found.is_empty(),
        "files over {MAX_LINES} lines of non-test code; split them or say `{REASON} …` at the top:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_size_rule_counts_code_before_the_tests_and_reads_the_reason() {
    let dir = std::env::temp_dir().join(format!("deskbridge-sizes-{}", std::process::id()));
    let src = dir.join("src");
    std::fs::create_dir_all(&src).expect("temp src");
    let long = "fn f() {}\n".repeat(MAX_LINES + 1);
    std::fs::write(
        src.join("lib.rs"),
        "mod big;\nmod explained;\nmod tested;\n",
    )
    .expect("write");
    std::fs::write(src.join("big.rs"), &long).expect("write");
    std::fs::write(
        src.join("explained.rs"),
        format!("//! Parser.\n//! {REASON} the grammar is one table.\n\n{long}"),
    )
    .expect("write");
    std::fs::write(
        src.join("tested.rs"),
        format!("fn f() {{}}\n#[cfg(test)]\nmod tests {{\n{long}}}\n"),
    )
    .expect("write");
    let found = oversized(&src);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("big.rs"), "{found:?}");
}

#[test]
fn the_checker_finds_a_cycle_and_reads_groups_and_skips_strings() {
    let dir = std::env::temp_dir().join(format!("deskbridge-cycles-{}", std::process::id()));
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("b")).expect("temp crate");
    std::fs::write(src.join("lib.rs"), "pub mod a;\npub mod b;\npub mod c;\n").expect("write");
    std::fs::write(
        src.join("a.rs"),
        "use crate::b::{x, inner::y as z};\n// crate::c::nothing\nconst S: &str = \"crate::c\";\n",
    )
    .expect("write");
    std::fs::write(src.join("b/mod.rs"), "pub mod inner;\npub fn x() {}\n").expect("write");
    std::fs::write(
        src.join("b/inner.rs"),
        "pub fn y() { super::super::a::f() }\n",
    )
    .expect("write");
    std::fs::write(src.join("c.rs"), "pub fn c() {}\n").expect("write");
    let g = graph(&src);
    let a: Module = vec!["a".into()];
    let inner: Module = vec!["b".into(), "inner".into()];
    assert!(g[&a].contains(&vec!["b".to_string()]), "{g:?}");
    assert!(g[&a].contains(&inner), "{g:?}");
    assert!(
        !g[&a].contains(&vec!["c".to_string()]),
        "comments and strings: {g:?}"
    );
    let found = cycles(&g);
    assert_eq!(found, vec![vec![a, inner]]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn each_helpdesk_lives_in_its_own_folder() {
    let helpdesk = Path::new(ROOT).join("shared/src/helpdesk");
    for vendor in ["zendesk", "intercom", "gorgias", "generic"] {
        assert!(
            helpdesk.join(vendor).join("mod.rs").exists(),
            "shared/src/helpdesk/{vendor}/mod.rs"
        );
    }
    // No vendor code elsewhere in the library: its files name no vendor.
    let src = Path::new(ROOT).join("shared/src");
    for (module, _) in modules(&src) {
        let inside = module.first().is_some_and(|m| m == "helpdesk");
        if inside {
            continue;
        }
        for vendor in ["zendesk", "intercom", "gorgias"] {
            assert!(
                !module.iter().any(|part| part.contains(vendor)),
                "{} is about {vendor} but outside shared/src/helpdesk/{vendor}/",
                module.join("::")
            );
        }
    }
}

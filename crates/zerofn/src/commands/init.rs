//! `zerofn init`: scaffolds a new app, a `wasi:http` function in Rust with its manifest, from
//! the templates compiled into the binary.

use crate::exit::{Code, Failure};
use std::path::Path;

const TEMPLATE: &[(&str, &str)] = &[
    (
        "zerofn.toml",
        include_str!("../../templates/hello/zerofn.toml.tmpl"),
    ),
    (
        "Cargo.toml",
        include_str!("../../templates/hello/Cargo.toml.tmpl"),
    ),
    (
        "src/lib.rs",
        include_str!("../../templates/hello/lib.rs.tmpl"),
    ),
    (".gitignore", "target/\n"),
];

pub fn init(dir: &Path, name: Option<&str>, json: bool) -> Result<(), Failure> {
    let name = match name {
        Some(name) => name.to_string(),
        None => dir
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase().replace(['_', ' '], "-"))
            .unwrap_or_else(|| "app".into()),
    };
    if !zerofn_manifest::is_dns_label(&name) {
        return Err(Failure::new(
            Code::Refused,
            format!(
                "`{name}` is not a valid app name: use lowercase letters, digits and '-', starting with a letter (pass --name)"
            ),
        ));
    }
    if dir.exists()
        && dir
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(Failure::new(
            Code::Refused,
            format!(
                "{} exists and is not empty; choose a new directory",
                dir.display()
            ),
        ));
    }
    let crate_name = name.replace('-', "_");
    let mut written = Vec::new();
    for (path, text) in TEMPLATE {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_failure(&target, e))?;
        }
        let text = text
            .replace("{{name}}", &name)
            .replace("{{crate_name}}", &crate_name);
        std::fs::write(&target, text).map_err(|e| io_failure(&target, e))?;
        written.push(target.display().to_string());
    }
    crate::output::print(
        json,
        &serde_json::json!({"app": name, "files": written}),
        || {
            format!(
                "Created app `{name}` in {}.\nNext: zerofn up {}",
                dir.display(),
                dir.display()
            )
        },
    );
    Ok(())
}

fn io_failure(path: &Path, error: std::io::Error) -> Failure {
    Failure::new(
        Code::Failure,
        format!("cannot write {}: {error}", path.display()),
    )
}

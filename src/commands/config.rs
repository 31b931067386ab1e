//! `deskbridge config push` and the configuration check of `deskbridge plan --stack-name`: the
//! configuration file reaches the deployed functions as the whole text of the stack's
//! Configuration secret (their `DESKBRIDGE_CONFIG` is `secretsmanager:<ARN>`), and nothing else
//! writes it, so an invalid file is refused before any function can read it.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use deskbridge_shared::config::Vars;
use deskbridge_shared::config::file::{self as config_file, CONFIG_VAR, ConfigOrigin};

/// The secret the deployed functions read their configuration from: the stack's
/// `ConfigSecretArn` output, else a `secretsmanager:` `DESKBRIDGE_CONFIG` in the environment.
pub fn target_secret(
    stack: Option<&str>,
    from_stack: &std::collections::HashMap<String, String>,
    env: &Vars,
) -> anyhow::Result<String> {
    let from = |value: &str| match ConfigOrigin::of(value) {
        ConfigOrigin::Secret(arn) => Some(arn),
        ConfigOrigin::Path(_) => None,
    };
    if let Some(arn) = from_stack.get(CONFIG_VAR).and_then(|v| from(v)) {
        return Ok(arn);
    }
    if let Some(arn) = env.get(CONFIG_VAR).and_then(|v| from(&v)) {
        return Ok(arn);
    }
    match stack {
        Some(stack) => bail!(
            "stack `{stack}` has no output `ConfigSecretArn` (deployed before the configuration \
             secret existed? `sam deploy` the current template.yaml)"
        ),
        None => bail!(
            "no deployed configuration to write: give --stack-name (or DESKBRIDGE_STACK), or set \
             DESKBRIDGE_CONFIG=secretsmanager:<ARN>"
        ),
    }
}

/// The local file to push or compare: `file` when given, else a `DESKBRIDGE_CONFIG` path in the
/// environment.
pub fn local_file(file: Option<&Path>, env: &Vars) -> Option<PathBuf> {
    if let Some(file) = file {
        return Some(file.to_path_buf());
    }
    match ConfigOrigin::of(&env.get(CONFIG_VAR)?) {
        ConfigOrigin::Path(path) => Some(PathBuf::from(path)),
        ConfigOrigin::Secret(_) => None,
    }
}

/// Reads and checks `path`; the error lists every problem as `file:line: reason`.
pub fn read_checked(path: &Path) -> anyhow::Result<(String, config_file::FileConfig)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the configuration file {}", path.display()))?;
    let checked = config_file::parse(&path.display().to_string(), &text).map_err(|e| {
        anyhow::anyhow!("{e}\nthe file was not pushed: fix the problems above first")
    })?;
    Ok((text, checked))
}

/// The deployed configuration text (the secret's current version).
pub async fn deployed_text(sdk: &aws_config::SdkConfig, arn: &str) -> anyhow::Result<String> {
    let out = aws_sdk_secretsmanager::Client::new(sdk)
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "reading the deployed configuration (secret {arn}): {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
            )
        })?;
    Ok(out.secret_string().unwrap_or_default().to_string())
}

/// Checks the file at `path` and writes its text as the secret's new version. Prints what it did.
pub async fn push(
    sdk: &aws_config::SdkConfig,
    path: &Path,
    arn: &str,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let (text, checked) = read_checked(path)?;
    for warning in &checked.warnings {
        writeln!(out, "warning: {}", warning.at(&path.display().to_string()))?;
    }
    let before = deployed_text(sdk, arn).await?;
    let fingerprint = config_file::fingerprint(&text);
    if before == text {
        writeln!(
            out,
            "{} (fingerprint {fingerprint}) is already the deployed configuration; nothing written",
            path.display()
        )?;
        return Ok(());
    }
    let written = aws_sdk_secretsmanager::Client::new(sdk)
        .put_secret_value()
        .secret_id(arn)
        .secret_string(&text)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "writing the configuration to secret {arn}: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
            )
        })?;
    writeln!(
        out,
        "pushed {} (fingerprint {fingerprint}) to {arn} as version {}; the functions read it \
         within five minutes (each logs `configuration: secret …, fingerprint {fingerprint}`)",
        path.display(),
        written.version_id().unwrap_or("?")
    )?;
    Ok(())
}

/// How a local configuration file compares with the deployed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// The same text.
    Same { fingerprint: String },
    /// Different texts; the first line (1-based) where they differ.
    Differs {
        local: String,
        deployed: String,
        first_line: usize,
    },
}

/// Compares the `local` and `deployed` texts.
pub fn compare(local: &str, deployed: &str) -> Drift {
    if local == deployed {
        return Drift::Same {
            fingerprint: config_file::fingerprint(local),
        };
    }
    let mut a = local.lines();
    let mut b = deployed.lines();
    let mut line = 1;
    loop {
        match (a.next(), b.next()) {
            (Some(x), Some(y)) if x == y => line += 1,
            _ => break,
        }
    }
    Drift::Differs {
        local: config_file::fingerprint(local),
        deployed: config_file::fingerprint(deployed),
        first_line: line,
    }
}

/// The configuration check of `deskbridge plan --stack-name`: checks the deployed text and, with
/// a local file, compares the two. Returns whether they differ.
pub fn report(
    stack: &str,
    local: Option<(&Path, &str)>,
    deployed: &str,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    let shown = format!("stack `{stack}`'s configuration");
    if let Err(e) = config_file::parse(&shown, deployed) {
        writeln!(out, "the deployed configuration is not valid:\n{e}")?;
    }
    let Some((path, text)) = local else {
        writeln!(
            out,
            "configuration: planning the deployed copy (fingerprint {})",
            config_file::fingerprint(deployed)
        )?;
        return Ok(false);
    };
    match compare(text, deployed) {
        Drift::Same { fingerprint } => {
            writeln!(
                out,
                "configuration: {} (fingerprint {fingerprint}) is what stack `{stack}` reads",
                path.display()
            )?;
            Ok(false)
        }
        Drift::Differs {
            local,
            deployed,
            first_line,
        } => {
            writeln!(
                out,
                "configuration: {} (fingerprint {local}) differs from what stack `{stack}` reads \
                 (fingerprint {deployed}) from line {first_line}; `deskbridge config push \
                 --stack-name {stack}` deploys it",
                path.display()
            )?;
            Ok(true)
        }
    }
}

/// The secret a command works on: the stack's config secret, or DESKBRIDGE_CONFIG's.
async fn secret_of(
    sdk: &aws_config::SdkConfig,
    stack_name: Option<&str>,
    env: &Vars,
) -> anyhow::Result<String> {
    let name = stack_name.filter(|n| !n.trim().is_empty());
    let from_stack = match name {
        Some(name) => crate::stack::variables(sdk, name).await?,
        None => Default::default(),
    };
    target_secret(name, &from_stack, env)
}

/// `deskbridge config push [FILE] [--stack-name S]`.
pub async fn run_push(stack_name: Option<&str>, file: Option<&Path>) -> anyhow::Result<()> {
    let sdk = deskbridge_shared::aws::sdk_config().await;
    let env = Vars::from_env();
    let arn = secret_of(&sdk, stack_name, &env).await?;
    let Some(path) = local_file(file, &env) else {
        bail!("name the file to push (or set DESKBRIDGE_CONFIG to its path)");
    };
    push(&sdk, &path, &arn, &mut std::io::stdout()).await
}

/// `deskbridge config show [--stack-name S]`.
pub async fn run_show(stack_name: Option<&str>) -> anyhow::Result<()> {
    let sdk = deskbridge_shared::aws::sdk_config().await;
    let env = Vars::from_env();
    let arn = secret_of(&sdk, stack_name, &env).await?;
    print!("{}", deployed_text(&sdk, &arn).await?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_differing_line_is_named() {
        let a = "sources:\n  zendesk:\n    enabled: true\n";
        let b = "sources:\n  zendesk:\n    enabled: false\n";
        match compare(a, b) {
            Drift::Differs {
                first_line,
                local,
                deployed,
            } => {
                assert_eq!(first_line, 3);
                assert_ne!(local, deployed);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(compare(a, a), Drift::Same { .. }));
        // A line added at the end differs after the last common line.
        assert!(matches!(
            compare(a, &format!("{a}lists: {{}}\n")),
            Drift::Differs { first_line: 4, .. }
        ));
    }

    #[test]
    fn the_target_is_the_stacks_secret_and_a_local_path_is_never_one() {
        let from_stack = std::collections::HashMap::from([(
            CONFIG_VAR.to_string(),
            "secretsmanager:arn:stack".to_string(),
        )]);
        let env = Vars::from_pairs([(CONFIG_VAR, "examples/deskbridge.yaml")]);
        assert_eq!(
            target_secret(Some("s"), &from_stack, &env).expect("from the stack"),
            "arn:stack"
        );
        let err = target_secret(Some("s"), &Default::default(), &env).expect_err("no output");
        assert!(err.to_string().contains("ConfigSecretArn"), "{err}");
        assert_eq!(
            local_file(None, &env),
            Some(PathBuf::from("examples/deskbridge.yaml"))
        );
        let env = Vars::from_pairs([(CONFIG_VAR, "secretsmanager:arn:env")]);
        assert_eq!(
            target_secret(None, &Default::default(), &env).expect("from env"),
            "arn:env"
        );
        assert_eq!(local_file(None, &env), None);
    }

    #[test]
    fn an_invalid_file_is_refused_with_its_lines() {
        let path = std::env::temp_dir().join(format!("deskbridge-bad-{}.yaml", std::process::id()));
        std::fs::write(&path, "connectors:\n  zendesk:\n    enabled: maybe\n").expect("write");
        let err = read_checked(&path).expect_err("invalid");
        let _ = std::fs::remove_file(&path);
        let text = err.to_string();
        assert!(text.contains(".yaml:3:"), "{text}");
        assert!(text.contains("not pushed"), "{text}");
    }
}

//! AWS SDK set-up shared by the functions and the CLI: the settings variables (environment over
//! the credentials secret, plus the configuration text when `DESKBRIDGE_CONFIG` names a secret),
//! and [`Live`], which rebuilds a function's handler when either secret changes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;

use crate::config::file::{self as config_file, ConfigOrigin};
use crate::config::{ConfigError, Vars};

/// Loads the SDK configuration from the standard variables (`AWS_REGION`, `AWS_ENDPOINT_URL`,
/// credentials chain). Local runs point `AWS_ENDPOINT_URL` at a moto server.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// Reads the JSON object of `DESKBRIDGE_SECRET_ARN` (when set) and lays the environment over it.
pub async fn load_vars(sdk: &aws_config::SdkConfig) -> Result<Vars, ConfigError> {
    load_vars_over(sdk, Vars::from_env()).await
}

/// As [`load_vars`], with `vars` in place of the environment (the CLI adds a stack's outputs
/// under it).
pub async fn load_vars_over(sdk: &aws_config::SdkConfig, vars: Vars) -> Result<Vars, ConfigError> {
    Ok(load_over(sdk, vars).await?.vars)
}

/// Settings variables and the versions of the secrets they were read from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub vars: Vars,
    /// `ARN@VersionId` of each secret read, in reading order: a change means a secret was
    /// replaced since.
    pub versions: Vec<String>,
}

/// Reads the credentials secret (`DESKBRIDGE_SECRET_ARN`, a JSON object whose keys are
/// variable names) under `vars`, then, when `DESKBRIDGE_CONFIG` is `secretsmanager:ARN`, the
/// configuration text that secret holds.
pub async fn load_over(sdk: &aws_config::SdkConfig, vars: Vars) -> Result<Loaded, ConfigError> {
    let mut versions = Vec::new();
    let client = aws_sdk_secretsmanager::Client::new(sdk);
    let mut vars = match vars.get("DESKBRIDGE_SECRET_ARN") {
        None => vars,
        Some(arn) => {
            let (text, version) = read_secret(&client, &arn).await?;
            versions.push(version);
            vars.with_fallback(secret_object(&arn, &text)?)
        }
    };
    if let Some(ConfigOrigin::Secret(arn)) = ConfigOrigin::from_vars(&vars) {
        let (text, version) = read_secret(&client, &arn).await?;
        versions.push(version);
        vars = vars.with_config_text(text);
    }
    Ok(Loaded { vars, versions })
}

/// The secret's current text and `ARN@VersionId`.
async fn read_secret(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
) -> Result<(String, String), ConfigError> {
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| ConfigError::Secret {
            arn: arn.to_string(),
            reason: aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
        })?;
    let version = format!("{arn}@{}", out.version_id().unwrap_or_default());
    Ok((out.secret_string().unwrap_or_default().to_string(), version))
}

/// The string and number values of the secret's JSON object.
fn secret_object(arn: &str, text: &str) -> Result<HashMap<String, String>, ConfigError> {
    let parsed: HashMap<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| ConfigError::Secret {
            arn: arn.to_string(),
            reason: format!("not a JSON object: {e}"),
        })?;
    Ok(parsed
        .into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some((k, s)),
            serde_json::Value::Number(n) => Some((k, n.to_string())),
            _ => None,
        })
        .collect())
}

/// One line saying which configuration `vars` select: its origin and [`config_file::fingerprint`],
/// or the built-in defaults.
pub fn describe_config(vars: &Vars) -> String {
    match ConfigOrigin::from_vars(vars) {
        None => "configuration: built-in defaults (DESKBRIDGE_CONFIG is not set)".to_string(),
        Some(ConfigOrigin::Secret(arn)) => match vars.config_text() {
            Some(text) if text.trim().is_empty() || is_only_comments(text) => format!(
                "configuration: built-in defaults (the secret {arn} holds no settings yet; \
                 `deskbridge config push` puts the file there)"
            ),
            Some(text) => format!(
                "configuration: secret {arn}, fingerprint {}",
                config_file::fingerprint(text)
            ),
            None => format!("configuration: secret {arn}, not read"),
        },
        Some(ConfigOrigin::Path(path)) => match std::fs::read_to_string(&path) {
            Ok(text) => format!(
                "configuration: file {path}, fingerprint {}",
                config_file::fingerprint(&text)
            ),
            Err(e) => format!("configuration: file {path}, unreadable: {e}"),
        },
    }
}

fn is_only_comments(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .all(|l| l.is_empty() || l.starts_with('#'))
}

/// The error a handler builder returns.
pub type BuildError = Box<dyn std::error::Error + Send + Sync>;

type Builder<T> = Box<dyn Fn(&Vars) -> Result<T, BuildError> + Send + Sync>;

/// How often [`Live`] looks for a replaced secret unless `DESKBRIDGE_SECRET_REFRESH_SECONDS`
/// says otherwise.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(300);

/// A function's handler, built from the settings variables at start-up and built again when the
/// credentials secret or the configuration secret has a new version: a `deskbridge config push`
/// or a rotated credential reaches running functions within the refresh period
/// (`DESKBRIDGE_SECRET_REFRESH_SECONDS`, default 300; 0 never looks again). A new version whose
/// settings do not build is refused with an error line per problem, and the running handler is
/// kept.
pub struct Live<T> {
    sdk: aws_config::SdkConfig,
    env: Vars,
    refresh: Option<Duration>,
    build: Builder<T>,
    current: tokio::sync::Mutex<Current<T>>,
}

struct Current<T> {
    value: Arc<T>,
    versions: Vec<String>,
    checked: Instant,
}

impl<T> Live<T> {
    /// Reads the settings over `env` and builds the handler. A failure is logged one problem per
    /// line (a configuration file's `file:line: reason` list) and returned, which fails the
    /// function's init.
    pub async fn start(
        sdk: &aws_config::SdkConfig,
        env: Vars,
        build: impl Fn(&Vars) -> Result<T, BuildError> + Send + Sync + 'static,
    ) -> Result<Self, BuildError> {
        let refresh = match env.get("DESKBRIDGE_SECRET_REFRESH_SECONDS") {
            None => Some(DEFAULT_REFRESH),
            Some(v) => match v.parse::<u64>() {
                Ok(0) => None,
                Ok(n) => Some(Duration::from_secs(n)),
                Err(_) => {
                    let e = ConfigError::Invalid {
                        name: "DESKBRIDGE_SECRET_REFRESH_SECONDS",
                        reason: "expected a whole number of seconds".into(),
                    };
                    tracing::error!("{e}");
                    return Err(e.into());
                }
            },
        };
        let loaded = load_over(sdk, env.clone()).await.inspect_err(|e| {
            log_problems("cannot start", &e.to_string());
        })?;
        tracing::info!("{}", describe_config(&loaded.vars));
        let value = build(&loaded.vars).inspect_err(|e| {
            log_problems("cannot start", &e.to_string());
        })?;
        Ok(Live {
            sdk: sdk.clone(),
            env,
            refresh,
            build: Box::new(build),
            current: tokio::sync::Mutex::new(Current {
                value: Arc::new(value),
                versions: loaded.versions,
                checked: Instant::now(),
            }),
        })
    }

    /// The handler to use now: rebuilt first when the refresh period has passed and a secret has
    /// a new version since the last build.
    pub async fn get(&self) -> Arc<T> {
        let mut current = self.current.lock().await;
        if let Some(every) = self.refresh
            && current.checked.elapsed() >= every
        {
            current.checked = Instant::now();
            match load_over(&self.sdk, self.env.clone()).await {
                Ok(loaded) if loaded.versions != current.versions => {
                    current.versions = loaded.versions;
                    match (self.build)(&loaded.vars) {
                        Ok(value) => {
                            tracing::info!(
                                "a secret has a new version; settings read again. {}",
                                describe_config(&loaded.vars)
                            );
                            current.value = Arc::new(value);
                        }
                        Err(e) => log_problems(
                            "a secret has a new version that cannot be used; the previous \
                             settings stay in use",
                            &e.to_string(),
                        ),
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(
                    "could not look for new secret versions ({e}); the current settings stay in use"
                ),
            }
        }
        current.value.clone()
    }
}

/// One error line per problem of `text` (a configuration file error has one per line).
fn log_problems(context: &str, text: &str) {
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        tracing::error!("{context}: {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_line_names_its_origin() {
        let unset = Vars::from_pairs([("X", "1")]);
        assert!(describe_config(&unset).contains("built-in defaults"));
        let empty = Vars::from_pairs([("DESKBRIDGE_CONFIG", "secretsmanager:arn:x")])
            .with_config_text("# nothing yet\n");
        let line = describe_config(&empty);
        assert!(
            line.contains("built-in defaults") && line.contains("config push"),
            "{line}"
        );
        let set = Vars::from_pairs([("DESKBRIDGE_CONFIG", "secretsmanager:arn:x")])
            .with_config_text("connectors:\n  zendesk:\n    enabled: false\n");
        let line = describe_config(&set);
        assert!(line.contains("secret arn:x, fingerprint "), "{line}");
        assert_eq!(
            line.rsplit(' ').next().map(str::len),
            Some(12),
            "twelve hex digits: {line}"
        );
    }
}

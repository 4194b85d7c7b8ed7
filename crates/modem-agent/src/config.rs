//! The agent's configuration: a TOML file, with environment variables on top.
//!
//! ```toml
//! server = "https://ender.example.org"
//!
//! [[modem]]
//! name = "dongle-1"
//! key = "dk_..."                 # the device key Ender gave this modem
//! port = "/dev/ttyUSB2"
//! baud = 115200                  # optional, 115200 by default
//! pin = "1234"                   # optional: only when the SIM asks for one
//! notify_port = "/dev/ttyUSB3"   # optional: where the modem prints +CMTI/+CDS, if elsewhere
//! profile = "sim7600"            # optional: generic (default) | sim800 | sim7600 | huawei
//! ```
//!
//! Environment variables, read once at start and winning over the file:
//!
//! - `ENDER_AGENT_CONFIG`: the file's path (`--config` wins over it; default
//!   [`DEFAULT_PATH`]);
//! - `ENDER_AGENT_SERVER`: `server`;
//! - `ENDER_AGENT_MODEM_<N>_<FIELD>`: a field of the N-th `[[modem]]` of the file,
//!   counting from 1, with FIELD one of `NAME`, `KEY`, `PORT`, `BAUD`, `PIN`,
//!   `NOTIFY_PORT`, `PROFILE` (e.g. `ENDER_AGENT_MODEM_1_KEY=dk_…` keeps the key out of
//!   the file). They override modems the file lists; they do not add modems.
//!
//! `ENDER_AGENT_DATA_DIR` is the binary's `--data-dir`. Any other `ENDER_AGENT_…` variable
//! is an error, so that a typo does not go unnoticed.
//! Every problem found is reported at once, each naming its field (or variable).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::modem::Profile;

/// Where the configuration is looked for without `--config` or `ENDER_AGENT_CONFIG`.
pub const DEFAULT_PATH: &str = "/etc/ender/modem-agent.toml";
/// Speeds a serial port can be set to.
pub const BAUD_RATES: &[u32] = &[9600, 19200, 38400, 57600, 115_200, 230_400, 460_800, 921_600];
pub const DEFAULT_BAUD: u32 = 115_200;

const ENV_PREFIX: &str = "ENDER_AGENT_";

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: Url,
    pub modems: Vec<ModemConfig>,
}

impl Config {
    /// A warning when the server is reached over plain `http://` on a host that is not on
    /// this machine or a private network: every request then carries the device keys in
    /// clear text across networks the operator does not control.
    pub fn cleartext_warning(&self) -> Option<String> {
        if self.server.scheme() != "http" {
            return None;
        }
        let local = match self.server.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.is_private() || ip.is_link_local(),
            Some(url::Host::Ipv6(ip)) => {
                ip.is_loopback() || ip.is_unique_local() || ip.is_unicast_link_local()
            }
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                name == "localhost"
                    || name.ends_with(".localhost")
                    || name.ends_with(".local")
                    || name.ends_with(".lan")
                    || name.ends_with(".internal")
                    || name.ends_with(".home.arpa")
                    || !name.contains('.')
            }
            None => true,
        };
        (!local).then(|| {
            format!(
                "the server {} is plain http:// on a public host: device keys and messages travel unencrypted. Use https://",
                self.server
            )
        })
    }
}

/// One modem.
#[derive(Debug, Clone)]
pub struct ModemConfig {
    pub name: String,
    pub key: DeviceKey,
    pub port: String,
    pub baud: u32,
    pub pin: Option<Pin>,
    pub notify_port: Option<String>,
    pub profile: Profile,
}

/// A device key (`dk_…`): what the modem authenticates to Ender with. Never printed.
#[derive(Clone)]
pub struct DeviceKey(SecretString);

impl DeviceKey {
    pub fn parse(key: &str) -> Result<Self, String> {
        let key = key.trim();
        match key.strip_prefix("dk_") {
            None => Err("must start with \"dk_\"".to_owned()),
            Some("") => Err("is only the \"dk_\" prefix".to_owned()),
            Some(rest)
                if !rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
            {
                Err("may only hold letters, digits, '_' and '-' after \"dk_\"".to_owned())
            }
            Some(_) => Ok(Self(SecretString::from(key.to_owned()))),
        }
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceKey(dk_[redacted])")
    }
}

/// A SIM PIN: 4 to 8 digits. Never printed.
#[derive(Clone)]
pub struct Pin(SecretString);

impl Pin {
    pub fn parse(pin: &str) -> Result<Self, String> {
        let pin = pin.trim();
        if !(4..=8).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
            return Err("must be 4 to 8 digits".to_owned());
        }
        Ok(Self(SecretString::from(pin.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin([redacted])")
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration {}: {reason} (choose the file with --config or ENDER_AGENT_CONFIG)", path.display())]
    Read { path: PathBuf, reason: String },
    #[error("the configuration {} is not valid TOML: {reason}", path.display())]
    Syntax { path: PathBuf, reason: String },
    #[error("the configuration {} has {} problem(s):\n{}", path.display(), problems.len(), list(problems))]
    Invalid { path: PathBuf, problems: Vec<Problem> },
}

/// One field that is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `server`, `modem 2 ("dongle-2") key`, or the environment variable that set it.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: Option<String>,
    #[serde(default)]
    modem: Vec<RawModem>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModem {
    name: Option<String>,
    key: Option<String>,
    port: Option<String>,
    baud: Option<u32>,
    pin: Option<String>,
    notify_port: Option<String>,
    profile: Option<String>,
}

impl Config {
    /// Reads `path` and applies the `ENDER_AGENT_…` variables found in `env` (pass
    /// `std::env::vars()`; tests pass their own).
    pub fn load(path: &Path, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Self::parse(path, &text, env)
    }

    /// [`Config::load`] on text already read; `path` is for messages.
    pub fn parse(
        path: &Path,
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let mut problems = Vec::new();
        let from_env = apply_env(&mut raw, env, &mut problems);
        let config = validate(raw, &from_env, &mut problems);
        match config {
            Some(config) if problems.is_empty() => Ok(config),
            _ => Err(ConfigError::Invalid {
                path: path.to_owned(),
                problems,
            }),
        }
    }
}

/// Overrides from the environment; returns which fields they set, to name the variable in
/// problems. Keys: `server` and `(modem number, FIELD)` as `"N.FIELD"`.
fn apply_env(
    raw: &mut RawConfig,
    env: impl IntoIterator<Item = (String, String)>,
    problems: &mut Vec<Problem>,
) -> HashMap<String, String> {
    let mut from_env = HashMap::new();
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    vars.sort();
    for (var, value) in vars {
        let rest = &var[ENV_PREFIX.len()..];
        // The binary's own (`--config`, `--data-dir`), not the file's.
        if rest == "CONFIG" || rest == "DATA_DIR" {
            continue;
        }
        if rest == "SERVER" {
            raw.server = Some(value);
            from_env.insert("server".to_owned(), var);
            continue;
        }
        let Some((number, field)) = rest
            .strip_prefix("MODEM_")
            .and_then(|r| r.split_once('_'))
            .and_then(|(n, f)| Some((n.parse::<usize>().ok()?, f)))
        else {
            problems.push(Problem {
                field: var.clone(),
                message: "unknown variable; expected ENDER_AGENT_CONFIG, ENDER_AGENT_SERVER or ENDER_AGENT_MODEM_<N>_<FIELD>".to_owned(),
            });
            continue;
        };
        let count = raw.modem.len();
        let Some(modem) = number.checked_sub(1).and_then(|i| raw.modem.get_mut(i)) else {
            problems.push(Problem {
                field: var.clone(),
                message: format!(
                    "there is no modem {number}: the file lists {count} (numbered from 1); variables override modems, they do not add them"
                ),
            });
            continue;
        };
        let slot = match field {
            "NAME" => &mut modem.name,
            "KEY" => &mut modem.key,
            "PORT" => &mut modem.port,
            "PIN" => &mut modem.pin,
            "NOTIFY_PORT" => &mut modem.notify_port,
            "PROFILE" => &mut modem.profile,
            "BAUD" => {
                match value.trim().parse() {
                    Ok(baud) => modem.baud = Some(baud),
                    Err(_) => problems.push(Problem {
                        field: var.clone(),
                        message: format!("{value:?} is not a number"),
                    }),
                }
                from_env.insert(format!("{number}.BAUD"), var);
                continue;
            }
            _ => {
                problems.push(Problem {
                    field: var.clone(),
                    message: "unknown field; expected NAME, KEY, PORT, BAUD, PIN, NOTIFY_PORT or PROFILE"
                        .to_owned(),
                });
                continue;
            }
        };
        *slot = Some(value);
        from_env.insert(format!("{number}.{field}"), var);
    }
    from_env
}

fn validate(
    raw: RawConfig,
    from_env: &HashMap<String, String>,
    problems: &mut Vec<Problem>,
) -> Option<Config> {
    let server_field = from_env
        .get("server")
        .map_or_else(|| "server".to_owned(), |var| format!("server (from {var})"));
    let server = match raw.server.as_deref().map(str::trim) {
        None | Some("") => {
            problems.push(Problem {
                field: server_field,
                message: "missing: the address of Ender, e.g. \"https://ender.example.org\" (or set ENDER_AGENT_SERVER)".to_owned(),
            });
            None
        }
        Some(text) => match Url::parse(text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Some(url),
            Ok(_) => {
                problems.push(Problem {
                    field: server_field,
                    message: format!("{text:?} must be an http:// or https:// address"),
                });
                None
            }
            Err(e) => {
                problems.push(Problem {
                    field: server_field,
                    message: format!("{text:?} is not an address: {e}"),
                });
                None
            }
        },
    };
    if raw.modem.is_empty() {
        problems.push(Problem {
            field: "modem".to_owned(),
            message: "no [[modem]] sections: the agent needs at least one modem".to_owned(),
        });
    }
    let mut modems = Vec::new();
    let mut names = HashSet::new();
    let mut keys = HashSet::new();
    let mut ports = HashSet::new();
    for (i, m) in raw.modem.into_iter().enumerate() {
        let number = i + 1;
        let title = match &m.name {
            Some(name) if !name.trim().is_empty() => format!("modem {number} ({name:?})"),
            _ => format!("modem {number}"),
        };
        let mut problem = |field: &str, message: String| {
            let field = match from_env.get(&format!("{number}.{}", field.to_ascii_uppercase())) {
                Some(var) => format!("{title} {field} (from {var})"),
                None => format!("{title} {field}"),
            };
            problems.push(Problem { field, message });
        };
        let name = match m.name.as_deref().map(str::trim) {
            None | Some("") => {
                problem(
                    "name",
                    "missing: every modem needs a name for the logs".to_owned(),
                );
                None
            }
            Some(name) if !names.insert(name.to_owned()) => {
                problem(
                    "name",
                    format!("{name:?} is used by an earlier modem; names must be unique"),
                );
                None
            }
            Some(name) => Some(name.to_owned()),
        };
        let key = match m.key.as_deref() {
            None => {
                problem(
                    "key",
                    "missing: the device key (dk_…) Ender gave this modem".to_owned(),
                );
                None
            }
            Some(key) => match DeviceKey::parse(key) {
                Ok(key) if !keys.insert(key.expose().to_owned()) => {
                    problem(
                        "key",
                        "is the same as an earlier modem's; each modem has its own".to_owned(),
                    );
                    None
                }
                Ok(key) => Some(key),
                Err(message) => {
                    problem("key", message);
                    None
                }
            },
        };
        let port = match m.port.as_deref().map(str::trim) {
            None | Some("") => {
                problem(
                    "port",
                    "missing: the modem's serial port, e.g. \"/dev/ttyUSB2\"".to_owned(),
                );
                None
            }
            Some(port) if !ports.insert(port.to_owned()) => {
                problem("port", format!("{port:?} is used by an earlier modem"));
                None
            }
            Some(port) => Some(port.to_owned()),
        };
        let baud = m.baud.unwrap_or(DEFAULT_BAUD);
        if !BAUD_RATES.contains(&baud) {
            let rates: Vec<String> = BAUD_RATES.iter().map(u32::to_string).collect();
            problem("baud", format!("{baud} is not one of {}", rates.join(", ")));
        }
        let pin = match m.pin.as_deref() {
            None => None,
            Some(pin) => match Pin::parse(pin) {
                Ok(pin) => Some(pin),
                Err(message) => {
                    problem("pin", message);
                    None
                }
            },
        };
        let notify_port = match m.notify_port.as_deref().map(str::trim) {
            Some("") => {
                problem(
                    "notify_port",
                    "is empty; leave it out when the modem has no separate notification port".to_owned(),
                );
                None
            }
            Some(p) if Some(p) == port.as_deref() => {
                problem(
                    "notify_port",
                    "is the same as port; leave it out instead".to_owned(),
                );
                None
            }
            other => other.map(str::to_owned),
        };
        let profile = match m.profile.as_deref() {
            None => Profile::default(),
            Some(p) => p.parse().unwrap_or_else(|message| {
                problem("profile", message);
                Profile::default()
            }),
        };
        if let (Some(name), Some(key), Some(port)) = (name, key, port) {
            modems.push(ModemConfig {
                name,
                key,
                port,
                baud,
                pin,
                notify_port,
                profile,
            });
        }
    }
    Some(Config {
        server: server?,
        modems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        server = "https://ender.example.org"

        [[modem]]
        name = "dongle-1"
        key = "dk_abc123"
        port = "/dev/ttyUSB2"
        baud = 115200
        pin = "1234"
        notify_port = "/dev/ttyUSB3"
        profile = "sim7600"

        [[modem]]
        name = "dongle-2"
        key = "dk_def456"
        port = "/dev/ttyUSB6"
    "#;

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn parse(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::parse(Path::new("agent.toml"), text, env(vars))
    }

    fn problems(text: &str, vars: &[(&str, &str)]) -> Vec<String> {
        match parse(text, vars) {
            Err(ConfigError::Invalid { problems, .. }) => problems.iter().map(ToString::to_string).collect(),
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn a_complete_file_parses_with_defaults_filled_in() {
        let config = parse(GOOD, &[("HOME", "/root")]).unwrap();
        assert_eq!(config.server.as_str(), "https://ender.example.org/");
        assert_eq!(config.modems.len(), 2);
        let first = &config.modems[0];
        assert_eq!(first.key.expose(), "dk_abc123");
        assert_eq!(first.pin.as_ref().unwrap().expose(), "1234");
        assert_eq!(first.profile, Profile::Sim7600);
        assert_eq!(first.notify_port.as_deref(), Some("/dev/ttyUSB3"));
        let second = &config.modems[1];
        assert_eq!(second.baud, DEFAULT_BAUD);
        assert!(second.pin.is_none());
        assert_eq!(second.profile, Profile::Generic);
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let config = parse(GOOD, &[]).unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("abc123"), "{debug}");
        assert!(!debug.contains("1234"), "{debug}");
    }

    #[test]
    fn environment_variables_override_the_file() {
        let config = parse(
            GOOD,
            &[
                ("ENDER_AGENT_SERVER", "http://127.0.0.1:8080"),
                ("ENDER_AGENT_MODEM_2_KEY", "dk_fromenv"),
                ("ENDER_AGENT_MODEM_2_BAUD", "9600"),
                ("ENDER_AGENT_MODEM_1_PROFILE", "huawei"),
                ("ENDER_AGENT_CONFIG", "/elsewhere.toml"),
            ],
        )
        .unwrap();
        assert_eq!(config.server.as_str(), "http://127.0.0.1:8080/");
        assert_eq!(config.modems[1].key.expose(), "dk_fromenv");
        assert_eq!(config.modems[1].baud, 9600);
        assert_eq!(config.modems[0].profile, Profile::Huawei);
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let text = r#"
            server = "ftp://ender.example.org"
            [[modem]]
            name = "a"
            key = "abc"
            port = ""
            baud = 12345
            pin = "12"
            profile = "nokia"
            [[modem]]
            name = "a"
            key = "dk_x"
            port = "/dev/ttyUSB0"
            notify_port = "/dev/ttyUSB0"
        "#;
        assert_eq!(
            problems(text, &[]),
            [
                "server: \"ftp://ender.example.org\" must be an http:// or https:// address",
                "modem 1 (\"a\") key: must start with \"dk_\"",
                "modem 1 (\"a\") port: missing: the modem's serial port, e.g. \"/dev/ttyUSB2\"",
                "modem 1 (\"a\") baud: 12345 is not one of 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600",
                "modem 1 (\"a\") pin: must be 4 to 8 digits",
                "modem 1 (\"a\") profile: unknown profile \"nokia\"; expected one of generic, sim800, sim7600, huawei",
                "modem 2 (\"a\") name: \"a\" is used by an earlier modem; names must be unique",
                "modem 2 (\"a\") notify_port: is the same as port; leave it out instead",
            ]
        );
    }

    #[test]
    fn problems_from_variables_name_the_variable() {
        let found = problems(
            GOOD,
            &[
                ("ENDER_AGENT_MODEM_1_KEY", "nope"),
                ("ENDER_AGENT_MODEM_3_PORT", "/dev/ttyUSB9"),
                ("ENDER_AGENT_MODEM_1_COLOUR", "red"),
                ("ENDER_AGENT_SERVR", "x"),
            ],
        );
        assert_eq!(
            found,
            [
                "ENDER_AGENT_MODEM_1_COLOUR: unknown field; expected NAME, KEY, PORT, BAUD, PIN, NOTIFY_PORT or PROFILE",
                "ENDER_AGENT_MODEM_3_PORT: there is no modem 3: the file lists 2 (numbered from 1); variables override modems, they do not add them",
                "ENDER_AGENT_SERVR: unknown variable; expected ENDER_AGENT_CONFIG, ENDER_AGENT_SERVER or ENDER_AGENT_MODEM_<N>_<FIELD>",
                "modem 1 (\"dongle-1\") key (from ENDER_AGENT_MODEM_1_KEY): must start with \"dk_\"",
            ]
        );
    }

    #[test]
    fn missing_server_and_modems_are_problems() {
        assert_eq!(
            problems("", &[]),
            [
                "server: missing: the address of Ender, e.g. \"https://ender.example.org\" (or set ENDER_AGENT_SERVER)",
                "modem: no [[modem]] sections: the agent needs at least one modem",
            ]
        );
    }

    #[test]
    fn unknown_keys_and_bad_toml_are_syntax_errors_with_a_position() {
        let err = parse("server = \"https://x.org\"\n[[modem]]\nkye = \"dk_a\"\n", &[]).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, ConfigError::Syntax { .. }), "{message}");
        assert!(message.contains("kye") && message.contains("line 3"), "{message}");
    }

    #[test]
    fn a_missing_file_says_how_to_choose_another() {
        let err = Config::load(Path::new("/nonexistent/agent.toml"), env(&[])).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("/nonexistent/agent.toml"), "{message}");
        assert!(message.contains("ENDER_AGENT_CONFIG"), "{message}");
    }

    #[test]
    fn the_example_configuration_is_valid() {
        let config = parse(include_str!("../modem-agent.example.toml"), &[]).unwrap();
        assert_eq!(config.modems[0].name, "dongle-1");
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let text = GOOD.replace("dk_def456", "dk_abc123");
        assert_eq!(
            problems(&text, &[]),
            ["modem 2 (\"dongle-2\") key: is the same as an earlier modem's; each modem has its own"]
        );
    }

    #[test]
    fn plain_http_to_a_public_host_is_warned_about() {
        let config = |server: &str| Config {
            server: Url::parse(server).unwrap(),
            modems: Vec::new(),
        };
        for quiet in [
            "https://ender.example.org",
            "http://127.0.0.1:8080",
            "http://[::1]:8080",
            "http://192.168.1.10",
            "http://10.0.0.2",
            "http://[fd00::2]",
            "http://localhost:8080",
            "http://ender.lan",
            "http://ender",
        ] {
            assert_eq!(config(quiet).cleartext_warning(), None, "{quiet}");
        }
        for loud in [
            "http://ender.example.org",
            "http://203.0.113.7:8080",
            "http://[2001:db8::1]",
        ] {
            let warning = config(loud).cleartext_warning().unwrap_or_default();
            assert!(warning.contains("unencrypted"), "{loud}: {warning}");
        }
    }
}

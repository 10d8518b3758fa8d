//! MQTT: a source that subscribes to a topic filter (QoS 0 or 1; at QoS 1 a persistent session
//! and manual acknowledgements sent only once a publish's rows have reached the sinks), and a
//! sink that publishes each output message (a JSON array) or each row.
//!
//! Addresses: `mqtt://[USER[:PASSWORD]@]HOST[:PORT]/TOPIC[?qos=0|1&client_id=ID&keep_alive=S&per=message|row&header=a,b,c]`,
//! or `mqtts://` for TLS (port 8883 by default; `ca=PEM` to trust a private CA instead of the
//! system's roots, `cert=PEM&key=PEM` for a client certificate).
//! The topic is everything after the first `/` up to `?`, so `+` and `#` need no escaping.

pub mod endpoint;
mod publisher;
mod sink;
mod source;

pub use publisher::Publisher;
pub use sink::MqttSink;
pub use source::{publish_rows, MqttSource};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{MqttOptions, QoS, TlsConfiguration, Transport};

/// A topic filter as MQTT allows it: `+` and `#` only as whole levels, `#` only last, no NUL.
/// Checked here, so a bad one is refused before anything runs with the rule it breaks.
pub fn check_topic_filter(topic: &str) -> Result<(), String> {
    let levels: Vec<&str> = topic.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('\0') {
            return Err(format!(
                "topic '{topic}': a topic may not hold a NUL character"
            ));
        }
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err(format!(
                "topic '{topic}': '#' must be a whole level and the last one (a/b/#)"
            ));
        }
        if level.contains('+') && *level != "+" {
            return Err(format!(
                "topic '{topic}': '+' must be a whole level (a/+/c)"
            ));
        }
    }
    if topic.len() > 65_535 {
        return Err(format!("topic of {} bytes: MQTT allows 65535", topic.len()));
    }
    Ok(())
}
use streamprep_core::IoError;

/// A parsed `mqtt://` address.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttUrl {
    /// Broker host.
    pub host: String,
    /// Broker port (1883 when not given).
    pub port: u16,
    /// Topic (or, for a source, topic filter).
    pub topic: String,
    /// Quality of service: 0 or 1.
    pub qos: u8,
    /// Client id; a stable default is derived from the topic.
    pub client_id: Option<String>,
    /// User name and password.
    pub credentials: Option<(String, String)>,
    /// Keep-alive interval in seconds.
    pub keep_alive: u64,
    /// Sink: publish each message as one JSON array (`message`) or each row (`row`).
    pub per_row: bool,
    /// Source, CSV rows: the header line (the columns, comma-separated).
    pub header: Option<String>,
    /// `mqtts://`: TLS, with these files.
    pub tls: Option<Tls>,
}

/// TLS settings of an `mqtts://` address.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tls {
    /// PEM file of the CA to trust (the system's roots when absent).
    pub ca: Option<PathBuf>,
    /// PEM files of a client certificate and its key.
    pub client: Option<(PathBuf, PathBuf)>,
}

impl MqttUrl {
    /// Parse `mqtt://...`; the error says what is wrong.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (rest, tls) = match (spec.strip_prefix("mqtt://"), spec.strip_prefix("mqtts://")) {
            (Some(rest), _) => (rest, false),
            (_, Some(rest)) => (rest, true),
            _ => return Err("an MQTT address starts with mqtt:// (or mqtts:// for TLS)".into()),
        };
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, topic) = rest
            .split_once('/')
            .ok_or("no topic: write mqtt://HOST:PORT/TOPIC")?;
        if topic.is_empty() {
            return Err("no topic: write mqtt://HOST:PORT/TOPIC".into());
        }
        check_topic_filter(topic)?;
        let (credentials, hostport) = match authority.rsplit_once('@') {
            Some((cred, hp)) => {
                let (u, p) = cred.split_once(':').unwrap_or((cred, ""));
                (Some((u.to_string(), p.to_string())), hp)
            }
            None => (None, authority),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("'{p}' is not a port number"))?,
            ),
            None => (hostport, if tls { 8883 } else { 1883 }),
        };
        if host.is_empty() {
            return Err("no host: write mqtt://HOST:PORT/TOPIC".into());
        }
        let mut url = MqttUrl {
            host: host.to_string(),
            port,
            topic: topic.to_string(),
            qos: 0,
            client_id: None,
            credentials,
            keep_alive: 30,
            per_row: false,
            header: None,
            tls: tls.then(Tls::default),
        };
        let (mut cert, mut key) = (None, None);
        for kv in query.split('&').filter(|s| !s.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("'{kv}' is not key=value"))?;
            match k {
                "qos" => {
                    url.qos = match v {
                        "0" => 0,
                        "1" => 1,
                        _ => return Err(format!("qos must be 0 or 1, got '{v}'")),
                    }
                }
                "client_id" => url.client_id = Some(v.to_string()),
                "keep_alive" => {
                    url.keep_alive =
                        v.parse().ok().filter(|s| *s >= 5).ok_or_else(|| {
                            format!("keep_alive is seconds (at least 5), got '{v}'")
                        })?
                }
                "per" => {
                    url.per_row = match v {
                        "row" => true,
                        "message" => false,
                        _ => return Err(format!("per must be 'message' or 'row', got '{v}'")),
                    }
                }
                "header" => url.header = Some(v.to_string()),
                "ca" | "cert" | "key" if !tls => {
                    return Err(format!("'{k}' is a TLS option: write mqtts://"))
                }
                "ca" => {
                    if let Some(t) = url.tls.as_mut() {
                        t.ca = Some(readable(k, v)?);
                    }
                }
                "cert" => cert = Some(readable(k, v)?),
                "key" => key = Some(readable(k, v)?),
                _ => {
                    return Err(format!(
                    "unknown option '{k}' (qos, client_id, keep_alive, per, header, ca, cert, key)"
                ))
                }
            }
        }
        match (cert, key, url.tls.as_mut()) {
            (Some(c), Some(k), Some(t)) => t.client = Some((c, k)),
            (None, None, _) => {}
            _ => return Err("a client certificate needs both cert= and key=".into()),
        }
        Ok(url)
    }

    /// Whether the topic holds wildcards (allowed for sources only).
    pub fn has_wildcards(&self) -> bool {
        self.topic.contains(['+', '#'])
    }

    pub(crate) fn qos(&self) -> QoS {
        if self.qos == 1 {
            QoS::AtLeastOnce
        } else {
            QoS::AtMostOnce
        }
    }

    /// `mqtt://HOST:PORT/TOPIC`, without credentials, for messages.
    pub fn display(&self) -> String {
        let scheme = if self.tls.is_some() { "mqtts" } else { "mqtt" };
        format!("{scheme}://{}:{}/{}", self.host, self.port, self.topic)
    }

    pub(crate) fn options(&self, role: &str, persistent: bool) -> Result<MqttOptions, IoError> {
        let id = self.client_id.clone().unwrap_or_else(|| {
            if persistent {
                // stable, so a restarted source finds its session (and the unacknowledged rows)
                let t: String = self
                    .topic
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                format!("streamprep-{role}-{t}")
            } else {
                format!("streamprep-{role}-{}-{}", std::process::id(), unique())
            }
        });
        let mut o = MqttOptions::new(id, self.host.clone(), self.port);
        o.set_keep_alive(Duration::from_secs(self.keep_alive));
        o.set_clean_session(!persistent);
        o.set_max_packet_size(source::CLIENT_MAX_PACKET, 64 << 20);
        o.set_inflight(1000);
        if let Some((u, p)) = &self.credentials {
            o.set_credentials(u.clone(), p.clone());
        }
        if let Some(tls) = &self.tls {
            o.set_transport(Transport::tls_with_config(self.tls_config(tls)?));
        }
        Ok(o)
    }

    /// One path for both cases: the roots (the `ca` file, or the system's) and, if given,
    /// the client certificate.
    fn tls_config(&self, tls: &Tls) -> Result<TlsConfiguration, IoError> {
        let pem = |p: &PathBuf| -> Result<Vec<u8>, IoError> {
            std::fs::read(p).map_err(|e| IoError::io(format!("reading {}", p.display()), e))
        };
        let roots = crate::roots::root_store(tls.ca.as_deref(), "?ca")
            .map_err(|e| IoError::Protocol(format!("{}: {e}", self.display())))?;
        let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
        let config = match &tls.client {
            None => builder.with_no_client_auth(),
            Some((c, k)) => {
                let key = rustls_pemfile::private_key(&mut pem(k)?.as_slice())
                    .map_err(|e| IoError::io(format!("reading {}", k.display()), e))?
                    .ok_or_else(|| {
                        IoError::Protocol(format!("{}: no private key in it", k.display()))
                    })?;
                let certs = crate::roots::pem_certs(c).map_err(IoError::Protocol)?;
                builder.with_client_auth_cert(certs, key).map_err(|e| {
                    IoError::Protocol(format!("the client certificate is refused: {e}"))
                })?
            }
        };
        Ok(TlsConfiguration::Rustls(Arc::new(config)))
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A file option (`ca=`, `cert=`, `key=`) must name a readable file: checked when the address
/// is parsed, before anything runs.
fn readable(key: &str, path: &str) -> Result<PathBuf, String> {
    std::fs::metadata(path)
        .ok()
        .filter(|m| m.is_file())
        .map(|_| PathBuf::from(path))
        .ok_or_else(|| format!("{key}={path}: no such file"))
}

/// How long to wait before reconnecting after `failures` failures in a row: 100 ms doubling
/// to 5 s.
pub(crate) fn backoff(failures: u32) -> Duration {
    Duration::from_millis((100u64 << failures.min(6)).min(5000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses_with_wildcards_and_options() {
        let u = MqttUrl::parse("mqtt://bob:pw@broker:1884/wetter/+/#?qos=1&client_id=x").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.topic.as_str(), u.qos),
            ("broker", 1884, "wetter/+/#", 1)
        );
        assert_eq!(u.credentials, Some(("bob".into(), "pw".into())));
        assert_eq!(u.client_id.as_deref(), Some("x"));
        assert!(u.has_wildcards());
        let d = MqttUrl::parse("mqtt://localhost/wetter").unwrap();
        assert_eq!(
            (d.port, d.qos, d.per_row, d.tls.is_some()),
            (1883, 0, false, false)
        );
        let t = MqttUrl::parse("mqtts://localhost/wetter?ca=/etc/hostname").unwrap();
        assert_eq!(t.port, 8883);
        assert_eq!(
            t.tls.and_then(|t| t.ca),
            Some(PathBuf::from("/etc/hostname"))
        );
        for bad in [
            "mqtt://host:1883",
            "mqtt://host:1883/",
            "mqtt://host:x/t",
            "mqtt://host/t?qos=2",
            "mqtt://host/t?color=red",
            "mqtt://host/t?ca=/etc/hostname",
            "mqtts://host/t?ca=/no/such.pem",
            "mqtts://host/t?cert=/etc/hostname",
            "http://host/t",
        ] {
            assert!(MqttUrl::parse(bad).is_err(), "{bad}");
        }
    }
}

//! The result of a remote command as the client reads it from the error stream: a
//! `metav1.Status` in JSON (protocol v4 and later), or the failure message as text (v1–v3).
//!
//! Field order and omissions follow Go's `encoding/json` on `metav1.Status`, so the bytes match
//! what kubelet sends.

use serde::Serialize;

/// How a command ended, as the streaming server reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The command ran and exited non-zero; `message` says which command.
    ExitCode {
        code: i32,
        message: String,
    },
    /// The runtime failed to run or attach (`message` is its error).
    Internal(String),
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct Cause<'a> {
    #[serde(rename = "reason", skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
    message: String,
}

#[derive(Serialize)]
struct Details<'a> {
    causes: Vec<Cause<'a>>,
}

#[derive(Serialize)]
struct Status<'a> {
    metadata: Empty,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Details<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<u16>,
}

impl Outcome {
    /// An exec's outcome from its exit code, worded as containerd words it.
    pub fn from_exit(code: i32, cmd: &[String]) -> Outcome {
        if code == 0 {
            Outcome::Success
        } else {
            Outcome::ExitCode {
                code,
                message: format!(
                    "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                    cmd.join(" ")
                ),
            }
        }
    }

    /// The status message (empty for success), what v1–v3 clients get as text.
    pub fn message(&self) -> String {
        match self {
            Outcome::Success => String::new(),
            Outcome::ExitCode { message, .. } => message.clone(),
            Outcome::Internal(e) => format!("Internal error occurred: {e}"),
        }
    }

    /// The `metav1.Status` JSON of protocol v4 and later.
    pub fn to_json(&self) -> Vec<u8> {
        let status = match self {
            Outcome::Success => {
                Status { metadata: Empty {}, status: "Success", message: None, reason: None, details: None, code: None }
            }
            Outcome::ExitCode { code, .. } => Status {
                metadata: Empty {},
                status: "Failure",
                message: Some(self.message()),
                reason: Some("NonZeroExitCode"),
                details: Some(Details { causes: vec![Cause { kind: Some("ExitCode"), message: code.to_string() }] }),
                code: None,
            },
            Outcome::Internal(e) => Status {
                metadata: Empty {},
                status: "Failure",
                message: Some(self.message()),
                reason: Some("InternalError"),
                details: Some(Details { causes: vec![Cause { kind: None, message: e.clone() }] }),
                code: Some(500),
            },
        };
        serde_json::to_vec(&status).expect("a status serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_match_kubelets_bytes() {
        assert_eq!(String::from_utf8(Outcome::Success.to_json()).unwrap(), r#"{"metadata":{},"status":"Success"}"#);
        let cmd = ["sh".to_string(), "-c".to_string(), "exit 3".to_string()];
        assert_eq!(
            String::from_utf8(Outcome::from_exit(3, &cmd).to_json()).unwrap(),
            r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
        );
        assert_eq!(
            String::from_utf8(
                Outcome::Internal("error executing command in container: no such container".into()).to_json()
            )
            .unwrap(),
            r#"{"metadata":{},"status":"Failure","message":"Internal error occurred: error executing command in container: no such container","reason":"InternalError","details":{"causes":[{"message":"error executing command in container: no such container"}]},"code":500}"#
        );
        assert_eq!(Outcome::from_exit(0, &cmd), Outcome::Success);
    }
}

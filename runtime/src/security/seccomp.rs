//! OCI `linux.seccomp` profiles, compiled and loaded with libseccomp.
//!
//! Semantics follow runc's libcontainer/seccomp:
//! - syscall names libseccomp does not know are skipped (debug log);
//! - rules whose action equals the default action are skipped;
//! - a rule with several conditions on the same argument index becomes one
//!   libseccomp rule per condition (OR); distinct indexes make one rule (AND);
//! - `SCMP_ACT_KILL` means kill-thread; ERRNO/TRACE without `errnoRet` use EPERM;
//! - the filter's NO_NEW_PRIVS attribute is off: the runtime sets
//!   no_new_privs itself when the spec asks for it;
//! - the program loaded is libseccomp's with runc's ENOSYS stub in front
//!   ([`super::seccomp_bpf`]), compiled once per profile and boot
//!   ([`super::seccomp_cache`]).
//!
//! - `SCMP_ACT_NOTIFY` (seccomp user notification) needs `listenerPath`, is refused as
//!   the default action and for `write` (the fd handoff to the runtime uses write(2)
//!   before the agent has the fd), like runc; the handoff is in process::seccomp_agent.

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterAttr, ScmpFilterContext, ScmpSyscall};
use serde::{Deserialize, Serialize};

pub use super::seccomp_bpf::Program;
use super::SecurityError;

/// OCI `linux.seccomp`.
#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LinuxSeccomp {
    pub default_action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architectures: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_metadata: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syscalls: Option<Vec<LinuxSyscall>>,
}

/// OCI `linux.seccomp.syscalls[]`.
#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LinuxSyscall {
    pub names: Vec<String>,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<LinuxSeccompArg>>,
}

/// OCI `linux.seccomp.syscalls[].args[]`. For SCMP_CMP_MASKED_EQ, `value` is
/// the mask and `valueTwo` the value compared against (absent = 0).
#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LinuxSeccompArg {
    pub index: u32,
    pub value: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_two: Option<u64>,
    pub op: String,
}

/// Syscalls take at most six arguments.
const MAX_ARGS: usize = 6;

/// The kernel's MAX_ERRNO: libseccomp takes SCMP_ACT_ERRNO values below it only.
const MAX_ERRNO: u16 = 4095;

const ARCHES: [(&str, ScmpArch); 23] = [
    ("SCMP_ARCH_X86", ScmpArch::X86),
    ("SCMP_ARCH_X86_64", ScmpArch::X8664),
    ("SCMP_ARCH_X32", ScmpArch::X32),
    ("SCMP_ARCH_ARM", ScmpArch::Arm),
    ("SCMP_ARCH_AARCH64", ScmpArch::Aarch64),
    ("SCMP_ARCH_LOONGARCH64", ScmpArch::Loongarch64),
    ("SCMP_ARCH_M68K", ScmpArch::M68k),
    ("SCMP_ARCH_MIPS", ScmpArch::Mips),
    ("SCMP_ARCH_MIPS64", ScmpArch::Mips64),
    ("SCMP_ARCH_MIPS64N32", ScmpArch::Mips64N32),
    ("SCMP_ARCH_MIPSEL", ScmpArch::Mipsel),
    ("SCMP_ARCH_MIPSEL64", ScmpArch::Mipsel64),
    ("SCMP_ARCH_MIPSEL64N32", ScmpArch::Mipsel64N32),
    ("SCMP_ARCH_PPC", ScmpArch::Ppc),
    ("SCMP_ARCH_PPC64", ScmpArch::Ppc64),
    ("SCMP_ARCH_PPC64LE", ScmpArch::Ppc64Le),
    ("SCMP_ARCH_S390", ScmpArch::S390),
    ("SCMP_ARCH_S390X", ScmpArch::S390X),
    ("SCMP_ARCH_PARISC", ScmpArch::Parisc),
    ("SCMP_ARCH_PARISC64", ScmpArch::Parisc64),
    ("SCMP_ARCH_RISCV64", ScmpArch::Riscv64),
    ("SCMP_ARCH_SH", ScmpArch::Sh),
    ("SCMP_ARCH_SHEB", ScmpArch::Sheb),
];

/// Maps an OCI filter flag to the libseccomp attribute that requests it.
fn parse_flag(flag: &str) -> Result<ScmpFilterAttr, SecurityError> {
    match flag {
        "SECCOMP_FILTER_FLAG_TSYNC" => Ok(ScmpFilterAttr::CtlTsync),
        "SECCOMP_FILTER_FLAG_LOG" => Ok(ScmpFilterAttr::CtlLog),
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => Ok(ScmpFilterAttr::CtlSsb),
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" => {
            Err(SecurityError::SeccompUnsupported(format!("flag {flag} (only meaningful with SCMP_ACT_NOTIFY)")))
        }
        _ => Err(SecurityError::Seccomp(format!("unknown flag {flag:?}"))),
    }
}

pub(crate) fn parse_arch(arch: &str) -> Result<ScmpArch, SecurityError> {
    ARCHES
        .iter()
        .find(|(n, _)| *n == arch)
        .map(|&(_, a)| a)
        .ok_or_else(|| SecurityError::Seccomp(format!("unknown architecture {arch:?}")))
}

/// `for syscalls [a, b]` or `as default action`, for messages.
fn rule_ctx(names: Option<&[String]>) -> String {
    match names {
        Some(n) => format!("for syscalls [{}]", n.join(", ")),
        None => "as default action".to_string(),
    }
}

/// Maps an OCI action (plus optional errnoRet) to libseccomp's.
fn parse_action(name: &str, errno_ret: Option<u32>, names: Option<&[String]>) -> Result<ScmpAction, SecurityError> {
    let code = || -> Result<u16, SecurityError> {
        let v = errno_ret.unwrap_or(libc::EPERM as u32);
        u16::try_from(v)
            .map_err(|_| SecurityError::Seccomp(format!("errnoRet {v} out of range (max 65535) {}", rule_ctx(names))))
    };
    let action = match name {
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => ScmpAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => ScmpAction::KillProcess,
        "SCMP_ACT_TRAP" => ScmpAction::Trap,
        "SCMP_ACT_ALLOW" => ScmpAction::Allow,
        "SCMP_ACT_LOG" => ScmpAction::Log,
        "SCMP_ACT_ERRNO" => {
            // libseccomp refuses an errno of MAX_ERRNO (4095) or more (EINVAL from
            // seccomp_init or seccomp_rule_add, in the child): refuse it here, before fork.
            let errno = code()?;
            if errno >= MAX_ERRNO {
                return Err(SecurityError::Seccomp(format!(
                    "errnoRet {errno} out of range for SCMP_ACT_ERRNO (max {}) {}",
                    MAX_ERRNO - 1,
                    rule_ctx(names)
                )));
            }
            return Ok(ScmpAction::Errno(i32::from(errno)));
        }
        "SCMP_ACT_TRACE" => return Ok(ScmpAction::Trace(code()?)),
        "SCMP_ACT_NOTIFY" if names.is_none() => {
            return Err(SecurityError::Seccomp("SCMP_ACT_NOTIFY cannot be used as the default action".into()))
        }
        "SCMP_ACT_NOTIFY" => ScmpAction::Notify,
        _ => return Err(SecurityError::Seccomp(format!("unknown action {name:?} {}", rule_ctx(names)))),
    };
    if let Some(v) = errno_ret {
        return Err(SecurityError::Seccomp(format!(
            "errnoRet {v} given with action {name} {} (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take one)",
            rule_ctx(names)
        )));
    }
    Ok(action)
}

/// Maps an OCI argument condition to a libseccomp comparison.
fn parse_arg(arg: &LinuxSeccompArg, names: &[String]) -> Result<ScmpArgCompare, SecurityError> {
    if arg.index as usize >= MAX_ARGS {
        return Err(SecurityError::Seccomp(format!(
            "argument index {} out of range (max {}) {}",
            arg.index,
            MAX_ARGS - 1,
            rule_ctx(Some(names))
        )));
    }
    let (op, datum) = match arg.op.as_str() {
        "SCMP_CMP_NE" => (ScmpCompareOp::NotEqual, arg.value),
        "SCMP_CMP_LT" => (ScmpCompareOp::Less, arg.value),
        "SCMP_CMP_LE" => (ScmpCompareOp::LessOrEqual, arg.value),
        "SCMP_CMP_EQ" => (ScmpCompareOp::Equal, arg.value),
        "SCMP_CMP_GE" => (ScmpCompareOp::GreaterEqual, arg.value),
        "SCMP_CMP_GT" => (ScmpCompareOp::Greater, arg.value),
        "SCMP_CMP_MASKED_EQ" => (ScmpCompareOp::MaskedEqual(arg.value), arg.value_two.unwrap_or(0)),
        other => {
            return Err(SecurityError::Seccomp(format!(
                "unknown operator {other:?} in argument {} {}",
                arg.index,
                rule_ctx(Some(names))
            )))
        }
    };
    Ok(ScmpArgCompare::new(arg.index, op, datum))
}

/// Checks actions, errnoRet, operators, indexes, architectures and flags
/// without calling into libseccomp, so a bad profile fails before fork.
pub fn validate(spec: &LinuxSeccomp) -> Result<(), SecurityError> {
    if uses_notify(spec) {
        if spec.listener_path.as_deref().unwrap_or("").is_empty() {
            return Err(SecurityError::Seccomp(
                "SCMP_ACT_NOTIFY needs listenerPath (the unix socket of the seccomp agent)".into(),
            ));
        }
        let notified = spec.syscalls.iter().flatten().filter(|c| c.action == "SCMP_ACT_NOTIFY");
        if notified.flat_map(|c| &c.names).any(|n| n == "write") {
            return Err(SecurityError::Seccomp(
                "SCMP_ACT_NOTIFY cannot be used for the write syscall (the runtime needs it \
                 to hand the notification fd to the agent)"
                    .into(),
            ));
        }
    }
    parse_action(&spec.default_action, spec.default_errno_ret, None)?;
    for arch in spec.architectures.iter().flatten() {
        parse_arch(arch)?;
    }
    for flag in spec.flags.iter().flatten() {
        parse_flag(flag)?;
    }
    for call in spec.syscalls.iter().flatten() {
        if call.names.is_empty() || call.names.iter().any(|n| n.is_empty()) {
            return Err(SecurityError::Seccomp(format!(
                "empty syscall name in rule with action {} {}",
                call.action,
                rule_ctx(Some(&call.names))
            )));
        }
        parse_action(&call.action, call.errno_ret, Some(&call.names))?;
        for arg in call.args.iter().flatten() {
            parse_arg(arg, &call.names)?;
        }
    }
    Ok(())
}

/// Whether the profile asks for seccomp user notification (an SCMP_ACT_NOTIFY rule):
/// the process loading it must hand the notification fd to the agent.
pub fn uses_notify(spec: &LinuxSeccomp) -> bool {
    spec.default_action == "SCMP_ACT_NOTIFY" || spec.syscalls.iter().flatten().any(|c| c.action == "SCMP_ACT_NOTIFY")
}

/// Formats a libseccomp error with the errno it carries, if any.
fn scmp_err(what: &str, e: libseccomp::error::SeccompError) -> SecurityError {
    let errno = e.sysrawrc().map(|rc| format!(": {}", std::io::Error::from_raw_os_error(rc.abs()))).unwrap_or_default();
    SecurityError::Seccomp(format!("{what}: {e}{errno}"))
}

/// Compiles the profile into a libseccomp filter (not yet loaded).
pub fn build_filter(spec: &LinuxSeccomp) -> Result<ScmpFilterContext, SecurityError> {
    validate(spec)?;
    let default = parse_action(&spec.default_action, spec.default_errno_ret, None)?;
    let mut ctx =
        ScmpFilterContext::new(default).map_err(|e| scmp_err(&format!("seccomp_init({})", spec.default_action), e))?;
    // Report the kernel's errno from seccomp_load instead of a generic ECANCELED.
    if let Err(e) = ctx.set_api_sysrawrc(true) {
        tracing::debug!("seccomp: SCMP_FLTATR_API_SYSRAWRC unavailable: {e}");
    }
    ctx.set_ctl_nnp(false).map_err(|e| scmp_err("seccomp_attr_set(SCMP_FLTATR_CTL_NNP, 0)", e))?;
    for name in spec.architectures.iter().flatten() {
        ctx.add_arch(parse_arch(name)?).map_err(|e| scmp_err(&format!("seccomp_arch_add({name})"), e))?;
    }
    for name in spec.flags.iter().flatten() {
        ctx.set_filter_attr(parse_flag(name)?, 1)
            .map_err(|e| scmp_err(&format!("seccomp_attr_set for flag {name}"), e))?;
    }
    let calls = spec.syscalls.as_deref().unwrap_or_default();
    if calls.len() > 8 {
        // Binary-tree optimisation for long rule sets, like runc; not fatal.
        if let Err(e) = ctx.set_ctl_optimize(2) {
            tracing::debug!("seccomp: binary tree optimization not available: {e}");
        }
    }
    for call in calls {
        add_call(&mut ctx, call, default)?;
    }
    Ok(ctx)
}

fn add_call(ctx: &mut ScmpFilterContext, call: &LinuxSyscall, default: ScmpAction) -> Result<(), SecurityError> {
    let action = parse_action(&call.action, call.errno_ret, Some(&call.names))?;
    if action == default {
        // libseccomp rejects rules equal to the default action; they are no-ops.
        tracing::debug!(syscalls = ?call.names, "seccomp: rule equals default action, skipped");
        return Ok(());
    }
    let args = call.args.as_deref().unwrap_or_default();
    let conds = args.iter().map(|a| parse_arg(a, &call.names)).collect::<Result<Vec<_>, _>>()?;
    let mut per_index = [0usize; MAX_ARGS];
    for a in args {
        per_index[a.index as usize] += 1;
    }
    // Same index twice cannot be ANDed meaningfully: one rule per condition.
    let one_rule_per_cond = per_index.iter().any(|&n| n > 1);
    for name in &call.names {
        let Ok(syscall) = ScmpSyscall::from_name(name) else {
            tracing::debug!(syscall = %name, "seccomp: syscall unknown to libseccomp, ignored");
            continue;
        };
        let what = || format!("seccomp_rule_add({name}, {}, {args:?})", call.action);
        if one_rule_per_cond {
            for c in &conds {
                ctx.add_rule_conditional(action, syscall, std::slice::from_ref(c)).map_err(|e| scmp_err(&what(), e))?;
            }
        } else {
            ctx.add_rule_conditional(action, syscall, &conds).map_err(|e| scmp_err(&what(), e))?;
        }
    }
    Ok(())
}

/// Compiles the profile into the program capsa loads: libseccomp's filter with
/// runc's ENOSYS stub in front (see [`super::seccomp_bpf`]).
/// A program prepared by [`super::seccomp_cache::warm`] in the runtime process
/// before it cloned this one is used as is.
pub fn compile(spec: &LinuxSeccomp) -> Result<Program, SecurityError> {
    if let Some(p) = super::seccomp_cache::memoized(spec) {
        return Ok(p);
    }
    let ctx = build_filter(spec)?;
    Program::new(spec, &ctx)
}

/// Loads the program into the calling process (seccomp(SECCOMP_SET_MODE_FILTER)).
/// Without no_new_privs this needs CAP_SYS_ADMIN, so load it before dropping
/// capabilities in that case (as runc does).
pub fn load(prog: &Program) -> Result<(), SecurityError> {
    prog.load().map(drop)
}

#[cfg(test)]
mod tests;

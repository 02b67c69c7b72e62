//! The program capsa loads for a seccomp profile: libseccomp's BPF with an
//! ENOSYS stub in front, loaded with seccomp(2).
//!
//! libseccomp has one default action for every syscall a profile does not name,
//! so a syscall newer than the profile (clone3, faccessat2, openat2 on older
//! profiles) gets the default errno, usually EPERM. glibc only falls back to an
//! older syscall on ENOSYS, so runc prepends a stub that answers ENOSYS for every
//! syscall number above the highest one the profile names, per architecture
//! (libcontainer/seccomp/patchbpf). capsa does the same, under runc's conditions:
//! - only when the default action is not permissive (not ALLOW, LOG or TRACE);
//! - only for the profile's `architectures` (a profile without any gets none);
//! - the highest number counts every name of every rule that libseccomp knows
//!   for that architecture, whatever the rule's action;
//! - on x86_64 the x32 ABI (bit 30 of the number) is checked on its own;
//! - on s390/s390x syscall 0 (the multiplexer for unknown numbers) is ENOSYS.
//!
//! capsa skips the stub when the default is already `SCMP_ACT_ERRNO` with
//! ENOSYS (the stub would change nothing).
//!
//! The filter flags (TSYNC, LOG, SPEC_ALLOW) come from the profile's `flags`;
//! NEW_LISTENER is added when a rule uses SCMP_ACT_NOTIFY, and the listener fd
//! the kernel returns is handed back by [`Program::load`].

use std::os::fd::{FromRawFd, OwnedFd};

use libseccomp::{ScmpArch, ScmpFilterContext, ScmpSyscall};

use super::seccomp::LinuxSeccomp;
use super::SecurityError;

const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
const FLAG_TSYNC: u32 = 1;
const FLAG_LOG: u32 = 1 << 1;
const FLAG_SPEC_ALLOW: u32 = 1 << 2;
const FLAG_NEW_LISTENER: u32 = 1 << 3;
const FLAG_TSYNC_ESRCH: u32 = 1 << 4;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
/// The kernel's limit on a classic BPF program (BPF_MAXINSNS).
const MAX_INSNS: usize = 4096;
/// x32 syscalls are x86_64's audit arch with this bit set in the number.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

// Classic BPF opcodes (linux/filter.h).
const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JMP_JA: u16 = 0x05; // BPF_JMP | BPF_JA
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGT_K: u16 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K
/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;

/// A compiled profile, ready to load: BPF instructions and seccomp(2) flags.
#[derive(Clone)]
pub struct Program {
    insns: Vec<libc::sock_filter>,
    flags: u32,
    stub_len: usize,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program").field("len", &self.insns.len()).field("stub_len", &self.stub_len).finish()
    }
}

impl PartialEq for Program {
    fn eq(&self, o: &Program) -> bool {
        self.to_bytes() == o.to_bytes()
    }
}

impl Program {
    /// Exports `ctx` (built from `spec`) as BPF and puts the ENOSYS stub in front.
    pub fn new(spec: &LinuxSeccomp, ctx: &ScmpFilterContext) -> Result<Program, SecurityError> {
        let filter = export(ctx)?;
        let stub = if wants_stub(spec) { enosys_stub(&last_syscalls(spec)?)? } else { Vec::new() };
        let stub_len = stub.len();
        let mut insns = stub;
        insns.extend(filter);
        if insns.len() > MAX_INSNS {
            return Err(SecurityError::Seccomp(format!(
                "the filter has {} BPF instructions, more than the kernel's limit of {MAX_INSNS}",
                insns.len()
            )));
        }
        Ok(Program { insns, flags: flags(spec), stub_len })
    }

    /// The program as bytes (native endian: flags, stub length, count,
    /// instructions), for the cache.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(12 + self.insns.len() * 8);
        for v in [self.flags, self.stub_len as u32, self.insns.len() as u32] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        for i in &self.insns {
            b.extend_from_slice(&i.code.to_ne_bytes());
            b.extend_from_slice(&[i.jt, i.jf]);
            b.extend_from_slice(&i.k.to_ne_bytes());
        }
        b
    }

    /// The inverse of [`Program::to_bytes`]; `None` unless `b` is exactly one program.
    pub(crate) fn from_bytes(b: &[u8]) -> Option<Program> {
        let u32_at = |i: usize| b.get(i..i + 4).map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]));
        let (flags, stub_len, n) = (u32_at(0)?, u32_at(4)? as usize, u32_at(8)? as usize);
        let body = b.get(12..)?;
        if body.len() != n.checked_mul(8)? || n == 0 || n > MAX_INSNS || stub_len >= n {
            return None;
        }
        let insns = body
            .chunks_exact(8)
            .map(|c| libc::sock_filter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        Some(Program { insns, flags, stub_len })
    }

    /// Number of BPF instructions (stub included).
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    /// Whether the program is empty (never, for a built filter).
    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }

    /// Number of instructions of the ENOSYS stub (0 when none was needed).
    pub fn stub_len(&self) -> usize {
        self.stub_len
    }

    /// The seccomp(2) flags the program is loaded with.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// Loads the program into the calling thread (seccomp(SECCOMP_SET_MODE_FILTER)).
    /// Returns the notification listener when a rule uses SCMP_ACT_NOTIFY.
    /// Without no_new_privs this needs CAP_SYS_ADMIN.
    pub fn load(&self) -> Result<Option<OwnedFd>, SecurityError> {
        let prog = libc::sock_fprog { len: self.insns.len() as libc::c_ushort, filter: self.insns.as_ptr().cast_mut() };
        // SAFETY: prog points at self.insns, alive and unchanged for the call; the
        // kernel copies the program before returning.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                libc::c_ulong::from(self.flags),
                &prog as *const libc::sock_fprog,
            )
        };
        if r < 0 {
            return Err(SecurityError::last_os(format!(
                "seccomp(SECCOMP_SET_MODE_FILTER, flags {:#x}, {} instructions)",
                self.flags,
                self.insns.len()
            )));
        }
        if self.flags & FLAG_NEW_LISTENER != 0 {
            // SAFETY: with NEW_LISTENER the kernel returns a new fd that nothing else owns.
            return Ok(Some(unsafe { OwnedFd::from_raw_fd(r as i32) }));
        }
        Ok(None)
    }
}

/// runc's condition: a stub unless the default action lets unknown syscalls run
/// (ALLOW, LOG, TRACE), or already answers ENOSYS.
fn wants_stub(spec: &LinuxSeccomp) -> bool {
    match spec.default_action.as_str() {
        "SCMP_ACT_ALLOW" | "SCMP_ACT_LOG" | "SCMP_ACT_TRACE" => false,
        "SCMP_ACT_ERRNO" => spec.default_errno_ret != Some(libc::ENOSYS as u32),
        _ => true,
    }
}

/// seccomp(2) flags for the profile.
fn flags(spec: &LinuxSeccomp) -> u32 {
    let mut f = 0;
    for flag in spec.flags.iter().flatten() {
        f |= match flag.as_str() {
            "SECCOMP_FILTER_FLAG_TSYNC" => FLAG_TSYNC,
            "SECCOMP_FILTER_FLAG_LOG" => FLAG_LOG,
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => FLAG_SPEC_ALLOW,
            _ => 0,
        };
    }
    if spec.syscalls.iter().flatten().any(|c| c.action == "SCMP_ACT_NOTIFY") {
        f |= FLAG_NEW_LISTENER;
        if f & FLAG_TSYNC != 0 {
            // The kernel refuses TSYNC with NEW_LISTENER unless TSYNC reports ESRCH.
            f |= FLAG_TSYNC_ESRCH;
        }
    }
    f
}

/// The program libseccomp generated, read back through a memfd (libseccomp
/// 2.5 has no in-memory export).
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, SecurityError> {
    use std::io::{Read, Seek};
    // SAFETY: memfd_create with a static NUL-terminated name.
    let fd = unsafe { libc::memfd_create(c"capsa-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(SecurityError::last_os("memfd_create for the seccomp filter"));
    }
    // SAFETY: fd is a new fd owned by this File only.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    ctx.export_bpf(&file).map_err(|e| SecurityError::Seccomp(format!("seccomp_export_bpf: {e}")))?;
    let mut bytes = Vec::new();
    file.rewind()
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|err| SecurityError::Syscall { op: "read back the exported seccomp filter".into(), err })?;
    const SIZE: usize = std::mem::size_of::<libc::sock_filter>();
    if bytes.is_empty() || bytes.len() % SIZE != 0 {
        return Err(SecurityError::Seccomp(format!(
            "seccomp_export_bpf wrote {} bytes, not whole instructions",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(SIZE)
        .map(|b| libc::sock_filter {
            code: u16::from_ne_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        })
        .collect())
}

/// The kernel's AUDIT_ARCH value for a libseccomp architecture (x32 shares
/// x86_64's; libseccomp's own X32 token is not what the kernel reports).
fn audit_arch(arch: ScmpArch) -> Option<u32> {
    const B64: u32 = 0x8000_0000;
    const LE: u32 = 0x4000_0000;
    const MIPS_N32: u32 = 0x2000_0000;
    Some(match arch {
        ScmpArch::X86 => 3 | LE,
        ScmpArch::X8664 | ScmpArch::X32 => 62 | B64 | LE,
        ScmpArch::Arm => 40 | LE,
        ScmpArch::Aarch64 => 183 | B64 | LE,
        ScmpArch::Loongarch64 => 258 | B64 | LE,
        ScmpArch::M68k => 4,
        ScmpArch::Mips => 8,
        ScmpArch::Mipsel => 8 | LE,
        ScmpArch::Mips64 => 8 | B64,
        ScmpArch::Mips64N32 => 8 | B64 | MIPS_N32,
        ScmpArch::Mipsel64 => 8 | B64 | LE,
        ScmpArch::Mipsel64N32 => 8 | B64 | LE | MIPS_N32,
        ScmpArch::Parisc => 15,
        ScmpArch::Parisc64 => 15 | B64,
        ScmpArch::Ppc => 20,
        ScmpArch::Ppc64 => 21 | B64,
        ScmpArch::Ppc64Le => 21 | B64 | LE,
        ScmpArch::S390 => 22,
        ScmpArch::S390X => 22 | B64,
        ScmpArch::Riscv64 => 243 | B64 | LE,
        ScmpArch::Sh => 42 | LE,
        ScmpArch::Sheb => 42,
        _ => return None,
    })
}

/// The highest syscall number the profile names, per architecture it lists.
#[derive(Debug, Default, PartialEq, Eq)]
struct LastSyscalls(Vec<(u32, ScmpArch, u32)>);

fn last_syscalls(spec: &LinuxSeccomp) -> Result<LastSyscalls, SecurityError> {
    let mut out = LastSyscalls::default();
    for name in spec.architectures.iter().flatten() {
        let arch = super::seccomp::parse_arch(name)?;
        if out.0.iter().any(|&(_, a, _)| a == arch) {
            continue;
        }
        let native = audit_arch(arch)
            .ok_or_else(|| SecurityError::Seccomp(format!("no audit architecture known for {name}")))?;
        let max = spec
            .syscalls
            .iter()
            .flatten()
            .flat_map(|c| &c.names)
            .filter_map(|n| ScmpSyscall::from_name_by_arch(n, arch).ok())
            .map(|s| s.as_raw_syscall())
            .filter(|&nr| nr > 0)
            .max();
        match max {
            Some(nr) => out.0.push((native, arch, nr as u32)),
            None => tracing::debug!(arch = %name, "seccomp: the profile names no syscall of this architecture"),
        }
    }
    Ok(out)
}

/// Where a jump goes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum To {
    Next,
    Enosys,
    Filter,
    /// The i-th architecture section, or its x32 half.
    Section(usize),
    X32(usize),
}

enum Op {
    Load(u32),
    Ret(u32),
    Jump { code: u16, k: u32, jt: To, jf: To },
    Ja(To),
    Label(To),
}

/// Assembles the stub:
/// ```text
///       ld [arch]
///       jeq ARCH_i -> section_i          (one per architecture)
///       ja filter
/// section_i:
///       ld [nr]
///       (s390: jeq 0 -> enosys)
///       (x86_64: jset X32_BIT -> x32 half or filter)
///       jgt MAX_i -> enosys, else filter
/// enosys:
///       ret ERRNO(ENOSYS)
/// filter: libseccomp's program
/// ```
fn enosys_stub(last: &LastSyscalls) -> Result<Vec<libc::sock_filter>, SecurityError> {
    // Group by kernel architecture: x86_64 and x32 share one.
    let mut natives: Vec<u32> = Vec::new();
    for &(n, _, _) in &last.0 {
        if !natives.contains(&n) {
            natives.push(n);
        }
    }
    if natives.is_empty() {
        return Ok(Vec::new());
    }
    let mut ops = vec![Op::Load(OFF_ARCH)];
    for (i, &n) in natives.iter().enumerate() {
        ops.push(Op::Jump { code: JEQ_K, k: n, jt: To::Section(i), jf: To::Next });
    }
    ops.push(Op::Ja(To::Filter));
    for (i, &n) in natives.iter().enumerate() {
        let of = |want: &[ScmpArch]| last.0.iter().find(|&&(nn, a, _)| nn == n && want.contains(&a)).map(|t| t.2);
        ops.push(Op::Label(To::Section(i)));
        ops.push(Op::Load(OFF_NR));
        let x86_64 = of(&[ScmpArch::X8664]);
        let x32 = of(&[ScmpArch::X32]);
        if x86_64.is_some() || x32.is_some() {
            // Numbers with bit 30 set are x32 calls; each ABI has its own maximum.
            let x32_to = if x32.is_some() { To::X32(i) } else { To::Filter };
            let x64_to = if x86_64.is_some() { To::Next } else { To::Filter };
            ops.push(Op::Jump { code: JSET_K, k: X32_SYSCALL_BIT, jt: x32_to, jf: x64_to });
            if let Some(max) = x86_64 {
                ops.push(Op::Jump { code: JGT_K, k: max, jt: To::Enosys, jf: To::Filter });
            }
            if let Some(max) = x32 {
                ops.push(Op::Label(To::X32(i)));
                ops.push(Op::Jump { code: JGT_K, k: max, jt: To::Enosys, jf: To::Filter });
            }
            continue;
        }
        let max = last.0.iter().filter(|t| t.0 == n).map(|t| t.2).max().unwrap_or(0);
        if last.0.iter().any(|t| t.0 == n && matches!(t.1, ScmpArch::S390 | ScmpArch::S390X)) {
            // Unknown numbers reach the kernel as syscall 0 (the multiplexer).
            ops.push(Op::Jump { code: JEQ_K, k: 0, jt: To::Enosys, jf: To::Next });
        }
        ops.push(Op::Jump { code: JGT_K, k: max, jt: To::Enosys, jf: To::Filter });
    }
    ops.push(Op::Label(To::Enosys));
    ops.push(Op::Ret(SECCOMP_RET_ERRNO | libc::ENOSYS as u32));
    ops.push(Op::Label(To::Filter));
    assemble(&ops)
}

/// Resolves labels into relative jumps.
fn assemble(ops: &[Op]) -> Result<Vec<libc::sock_filter>, SecurityError> {
    let mut labels: Vec<(To, usize)> = Vec::new();
    let mut pc = 0;
    for op in ops {
        match op {
            Op::Label(l) => labels.push((*l, pc)),
            _ => pc += 1,
        }
    }
    let at = |l: To| labels.iter().find(|(x, _)| *x == l).map(|&(_, p)| p);
    let mut out = Vec::with_capacity(pc);
    for op in ops {
        let here = out.len();
        let rel = |to: To| -> Result<usize, SecurityError> {
            let target = if to == To::Next { here + 1 } else { at(to).ok_or_else(|| bug(to))? };
            target.checked_sub(here + 1).ok_or_else(|| bug(to))
        };
        let short = |to: To| -> Result<u8, SecurityError> {
            u8::try_from(rel(to)?).map_err(|_| SecurityError::Seccomp("ENOSYS stub: jump over 255".into()))
        };
        let insn = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
        match *op {
            Op::Label(_) => continue,
            Op::Load(off) => out.push(insn(LD_W_ABS, 0, 0, off)),
            Op::Ret(k) => out.push(insn(RET_K, 0, 0, k)),
            Op::Ja(to) => out.push(insn(JMP_JA, 0, 0, rel(to)? as u32)),
            Op::Jump { code, k, jt, jf } => out.push(insn(code, short(jt)?, short(jf)?, k)),
        }
    }
    Ok(out)
}

fn bug(to: To) -> SecurityError {
    SecurityError::Seccomp(format!("ENOSYS stub: bad jump target {to:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::seccomp::{LinuxSeccomp, LinuxSyscall};

    fn spec(default: &str, arches: &[&str], names: &[&str]) -> LinuxSeccomp {
        LinuxSeccomp {
            default_action: default.into(),
            architectures: Some(arches.iter().map(|s| s.to_string()).collect()),
            syscalls: Some(vec![LinuxSyscall {
                names: names.iter().map(|s| s.to_string()).collect(),
                action: "SCMP_ACT_ALLOW".into(),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    /// Runs the classic BPF program on (arch, nr) like the kernel would (loads
    /// of nr/arch, jeq/jgt/jset, ja, ret only).
    fn run(p: &[libc::sock_filter], arch: u32, nr: u32) -> u32 {
        let (mut pc, mut a) = (0usize, 0u32);
        loop {
            let i = p[pc];
            match i.code {
                LD_W_ABS => a = if i.k == OFF_ARCH { arch } else { nr },
                RET_K => return i.k,
                JMP_JA => pc += i.k as usize,
                JEQ_K | JGT_K | JSET_K => {
                    let t = match i.code {
                        JEQ_K => a == i.k,
                        JGT_K => a > i.k,
                        _ => a & i.k != 0,
                    };
                    pc += usize::from(if t { i.jt } else { i.jf });
                }
                c => panic!("unexpected opcode {c:#x} at {pc}"),
            }
            pc += 1;
            if pc >= p.len() {
                return u32::MAX; // fell into the filter
            }
        }
    }

    const X86_64: u32 = 0xC000_003E;
    const I386: u32 = 0x4000_0003;
    const ENOSYS: u32 = SECCOMP_RET_ERRNO | 38;
    const FILTER: u32 = u32::MAX;

    #[test]
    fn stub_conditions_match_runc() {
        let a = &["SCMP_ARCH_X86_64"];
        assert!(wants_stub(&spec("SCMP_ACT_ERRNO", a, &["read"])));
        assert!(wants_stub(&spec("SCMP_ACT_KILL", a, &["read"])));
        assert!(wants_stub(&spec("SCMP_ACT_KILL_PROCESS", a, &["read"])));
        assert!(wants_stub(&spec("SCMP_ACT_TRAP", a, &["read"])));
        for permissive in ["SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE"] {
            assert!(!wants_stub(&spec(permissive, a, &["read"])), "{permissive}");
        }
        let enosys = LinuxSeccomp { default_errno_ret: Some(38), ..spec("SCMP_ACT_ERRNO", a, &["read"]) };
        assert!(!wants_stub(&enosys));
        let eperm = LinuxSeccomp { default_errno_ret: Some(1), ..spec("SCMP_ACT_ERRNO", a, &["read"]) };
        assert!(wants_stub(&eperm));
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn last_syscalls_per_arch() {
        // read=0, openat=257 and faccessat2=439 on x86_64; x32 numbers carry bit 30;
        // i386 has its own table (openat=295, faccessat2=439).
        let s = spec("SCMP_ACT_ERRNO", &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"], &["read", "openat"]);
        let l = last_syscalls(&s).unwrap();
        assert_eq!(
            l.0,
            vec![
                (X86_64, ScmpArch::X8664, 257),
                (I386, ScmpArch::X86, 295),
                (X86_64, ScmpArch::X32, 0x4000_0000 | 257)
            ]
        );
        // No architectures: no stub (runc's rule).
        let none = LinuxSeccomp { architectures: None, ..s.clone() };
        assert!(enosys_stub(&last_syscalls(&none).unwrap()).unwrap().is_empty());
        // Unknown names are skipped; no known name at all: no section.
        let unknown = spec("SCMP_ACT_ERRNO", &["SCMP_ARCH_X86_64"], &["no_such_syscall"]);
        assert_eq!(last_syscalls(&unknown).unwrap(), LastSyscalls::default());
    }

    #[test]
    fn stub_semantics() {
        let x32 = |nr: u32| nr | X32_SYSCALL_BIT;
        let last = LastSyscalls(vec![
            (X86_64, ScmpArch::X8664, 257),
            (I386, ScmpArch::X86, 295),
            (X86_64, ScmpArch::X32, x32(300)),
        ]);
        let p = enosys_stub(&last).unwrap();
        assert_eq!(run(&p, X86_64, 0), FILTER);
        assert_eq!(run(&p, X86_64, 257), FILTER);
        assert_eq!(run(&p, X86_64, 258), ENOSYS);
        assert_eq!(run(&p, X86_64, x32(300)), FILTER);
        assert_eq!(run(&p, X86_64, x32(301)), ENOSYS);
        assert_eq!(run(&p, I386, 295), FILTER);
        assert_eq!(run(&p, I386, 296), ENOSYS);
        assert_eq!(run(&p, 0xdead, 5000), FILTER, "other architectures go to libseccomp's bad-arch action");

        // x86_64 alone: x32 numbers are left to the filter; x32 alone: x86_64 ones.
        let p = enosys_stub(&LastSyscalls(vec![(X86_64, ScmpArch::X8664, 257)])).unwrap();
        assert_eq!((run(&p, X86_64, x32(5000)), run(&p, X86_64, 5000)), (FILTER, ENOSYS));
        let p = enosys_stub(&LastSyscalls(vec![(X86_64, ScmpArch::X32, x32(10))])).unwrap();
        assert_eq!((run(&p, X86_64, 5000), run(&p, X86_64, x32(11))), (FILTER, ENOSYS));

        // s390x: syscall 0 is the multiplexer for unknown numbers.
        let s390x = 0x8000_0016;
        let p = enosys_stub(&LastSyscalls(vec![(s390x, ScmpArch::S390X, 400)])).unwrap();
        assert_eq!((run(&p, s390x, 0), run(&p, s390x, 1), run(&p, s390x, 401)), (ENOSYS, FILTER, ENOSYS));
    }

    #[test]
    fn flags_from_profile() {
        let mut s = spec("SCMP_ACT_ERRNO", &[], &["read"]);
        assert_eq!(flags(&s), 0);
        s.flags = Some(vec!["SECCOMP_FILTER_FLAG_LOG".into(), "SECCOMP_FILTER_FLAG_SPEC_ALLOW".into()]);
        assert_eq!(flags(&s), FLAG_LOG | FLAG_SPEC_ALLOW);
        s.flags = Some(vec!["SECCOMP_FILTER_FLAG_TSYNC".into()]);
        s.syscalls.as_mut().unwrap()[0].action = "SCMP_ACT_NOTIFY".into();
        assert_eq!(flags(&s), FLAG_TSYNC | FLAG_NEW_LISTENER | FLAG_TSYNC_ESRCH);
    }
}

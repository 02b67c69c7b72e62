//! Device control on cgroup v2: there is no devices.allow file; instead an eBPF
//! program of type BPF_PROG_TYPE_CGROUP_DEVICE, attached to the container's cgroup,
//! answers every open/mknod of a device node. This module compiles the state the rules
//! reach (`devices::DeviceState`, the v1 kernel's semantics, as runc does) into such a
//! program and attaches it, replacing any program capsa attached before.
//!
//! The program sees `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32
//! minor; }` where `access_type = access << 16 | type` (type: 1 block, 2 char; access
//! bits: 1 mknod, 2 read, 4 write). Deny-by-default: an exception whose access holds
//! every requested bit allows. Allow-by-default: an exception sharing any requested
//! bit denies (as v1 does; runc's program wants all the bits there, and lets `rw`
//! through a deny of `w`).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use super::devices::{DevType, DeviceState, ACC_ALL};
use super::CgroupError;

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { code, regs: (src << 4) | (dst & 0xf), off, imm }
}

// Opcodes (linux/bpf.h, linux/bpf_common.h).
const LDX_MEM_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const ALU32_AND_K: u8 = 0x54;
const ALU32_RSH_K: u8 = 0x74;
const ALU32_MOV_X: u8 = 0xbc;
const ALU64_MOV_K: u8 = 0xb7;
const JMP_JEQ_K: u8 = 0x15; // if dst == imm goto pc + off
const JMP_JNE_K: u8 = 0x55; // if dst != imm goto pc + off
const JMP_JNE_X: u8 = 0x5d; // if dst != src goto pc + off
const EXIT: u8 = 0x95;

const DEVCG_DEV_BLOCK: i32 = 1;
const DEVCG_DEV_CHAR: i32 = 2;

/// Compile the state into a program: r2 = type, r3 = access, r4 = major, r5 = minor.
pub fn compile(st: &DeviceState) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU32_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU32_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for ex in &st.exceptions {
        let typ = if ex.typ == DevType::Char { DEVCG_DEV_CHAR } else { DEVCG_DEV_BLOCK };
        let mut checks = vec![insn(JMP_JNE_K, 2, 0, 0, typ)];
        if ex.access != ACC_ALL {
            checks.push(insn(ALU32_MOV_X, 1, 3, 0, 0));
            checks.push(insn(ALU32_AND_K, 1, 0, 0, ex.access as i32));
            if st.default_allow {
                // A deny exception matches when any requested bit is in it: skip if r3 & access == 0.
                checks.push(insn(JMP_JEQ_K, 1, 0, 0, 0));
            } else {
                // An allow exception matches when it holds every requested bit: (r3 & access) == r3.
                checks.push(insn(JMP_JNE_X, 1, 3, 0, 0));
            }
        }
        for (v, reg) in [(ex.major, 4u8), (ex.minor, 5u8)] {
            if let Some(n) = v {
                checks.push(insn(JMP_JNE_K, reg, 0, 0, n as i32));
            }
        }
        // On a failed check, skip this block: the remaining checks plus the two
        // instructions that return the verdict.
        let n = checks.len();
        for (i, c) in checks.iter_mut().enumerate() {
            if matches!(c.code, JMP_JNE_K | JMP_JNE_X | JMP_JEQ_K) {
                c.off = (n - i - 1 + 2) as i16;
            }
        }
        p.extend(checks);
        p.push(insn(ALU64_MOV_K, 0, 0, 0, !st.default_allow as i32));
        p.push(insn(EXIT, 0, 0, 0, 0));
    }
    p.push(insn(ALU64_MOV_K, 0, 0, 0, st.default_allow as i32));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

const BPF_PROG_LOAD: i64 = 5;
const BPF_PROG_ATTACH: i64 = 8;
const BPF_PROG_DETACH: i64 = 9;
const BPF_PROG_GET_FD_BY_ID: i64 = 13;
const BPF_PROG_QUERY: i64 = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

fn bpf(cmd: i64, attr: &mut [u8; 128]) -> std::io::Result<i64> {
    // SAFETY: attr is a zero-filled 128-byte buffer, larger than every bpf_attr
    // variant used here; the kernel reads/writes only within the size we pass.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn put32(a: &mut [u8; 128], off: usize, v: u32) {
    a[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put64(a: &mut [u8; 128], off: usize, v: u64) {
    a[off..off + 8].copy_from_slice(&v.to_ne_bytes());
}

fn err(what: String, e: std::io::Error) -> CgroupError {
    CgroupError::Unsupported { what, why: e.to_string() }
}

/// Load the program into the kernel. The verifier's log is asked for only when a
/// load fails (a log that outgrows its buffer fails the load itself: ENOSPC).
pub fn load(prog: &[Insn]) -> Result<OwnedFd, CgroupError> {
    let e = match load_with_log(prog, None) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    let mut log = vec![0u8; 256 << 10];
    let _ = load_with_log(prog, Some(&mut log));
    let end = log.iter().position(|&b| b == 0).unwrap_or(0);
    let text = String::from_utf8_lossy(&log[..end]).into_owned();
    // The end of the log says why.
    let tail: String =
        text.trim().lines().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("; ");
    Err(err(format!("load the device filter (bpf PROG_LOAD, {} instructions; verifier: {tail})", prog.len()), e))
}

fn load_with_log(prog: &[Insn], log: Option<&mut [u8]>) -> std::io::Result<OwnedFd> {
    let license = c"Apache";
    let mut a = [0u8; 128];
    put32(&mut a, 0, BPF_PROG_TYPE_CGROUP_DEVICE);
    put32(&mut a, 4, prog.len() as u32);
    put64(&mut a, 8, prog.as_ptr() as u64);
    put64(&mut a, 16, license.as_ptr() as u64);
    if let Some(log) = log {
        put32(&mut a, 24, 1);
        put32(&mut a, 28, log.len() as u32);
        put64(&mut a, 32, log.as_mut_ptr() as u64);
    }
    a[48..54].copy_from_slice(b"capsa\0");
    let fd = bpf(BPF_PROG_LOAD, &mut a)?;
    // SAFETY: a fresh fd returned by the kernel.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Ids of the device programs attached to the cgroup open at `cg`.
fn attached(cg: RawFd) -> Vec<u32> {
    let mut ids = [0u32; 64];
    let mut a = [0u8; 128];
    put32(&mut a, 0, cg as u32);
    put32(&mut a, 4, BPF_CGROUP_DEVICE);
    put64(&mut a, 16, ids.as_mut_ptr() as u64);
    put32(&mut a, 24, ids.len() as u32);
    match bpf(BPF_PROG_QUERY, &mut a) {
        Ok(_) => {
            let n = u32::from_ne_bytes(a[24..28].try_into().unwrap()) as usize;
            ids[..n.min(ids.len())].to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// Compile, load and attach the device state to the cgroup directory `dir`, then detach
/// whatever device programs were attached before (so `update` replaces them).
pub fn apply(dir: &Path, st: &DeviceState) -> Result<(), CgroupError> {
    let prog = compile(st);
    let fd = load(&prog)?;
    let cg = std::fs::File::open(dir).map_err(|e| CgroupError::Read { path: dir.to_path_buf(), source: e })?;
    let old = attached(cg.as_raw_fd());
    let mut a = [0u8; 128];
    put32(&mut a, 0, cg.as_raw_fd() as u32);
    put32(&mut a, 4, fd.as_raw_fd() as u32);
    put32(&mut a, 8, BPF_CGROUP_DEVICE);
    put32(&mut a, 12, BPF_F_ALLOW_MULTI);
    bpf(BPF_PROG_ATTACH, &mut a)
        .map_err(|e| err(format!("attach the device filter to {} (bpf PROG_ATTACH)", dir.display()), e))?;
    crate::explain::step(crate::explain::Kind::Cgroup, || {
        crate::explain::Step::new(
            format!(
                "device access filter on {}: an eBPF program of {} instructions decides every open/mknod of a device node",
                dir.display(),
                prog.len()
            ),
            "bpf(BPF_PROG_LOAD, BPF_PROG_TYPE_CGROUP_DEVICE) + bpf(BPF_PROG_ATTACH, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)",
        )
        .field("dir", dir.display().to_string())
    });
    for id in old {
        let mut g = [0u8; 128];
        put32(&mut g, 0, id);
        let Ok(ofd) = bpf(BPF_PROG_GET_FD_BY_ID, &mut g) else { continue };
        // SAFETY: a fresh fd from the kernel.
        let ofd = unsafe { OwnedFd::from_raw_fd(ofd as RawFd) };
        let mut d = [0u8; 128];
        put32(&mut d, 0, cg.as_raw_fd() as u32);
        put32(&mut d, 4, ofd.as_raw_fd() as u32);
        put32(&mut d, 8, BPF_CGROUP_DEVICE);
        if let Err(e) = bpf(BPF_PROG_DETACH, &mut d) {
            tracing::warn!("detach the previous device filter {id} from {}: {e}", dir.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::resources::LinuxDeviceCgroup;
    use super::*;

    fn rule(allow: bool, t: &str, ma: Option<i64>, mi: Option<i64>, a: &str) -> LinuxDeviceCgroup {
        LinuxDeviceCgroup { allow, r#type: Some(t.into()), major: ma, minor: mi, access: Some(a.into()) }
    }

    fn state(rules: &[LinuxDeviceCgroup]) -> DeviceState {
        DeviceState::from_rules(rules).unwrap()
    }

    #[test]
    fn shape() {
        let p = compile(&state(&[rule(false, "a", None, None, "rwm"), rule(true, "c", Some(1), Some(3), "rw")]));
        // prologue 6 + block(c 1:3 rw: type, mov, and, jne, major, minor + 2) + default 2
        assert_eq!(p.len(), 6 + 8 + 2);
        // Every jump of the block lands on the default verdict.
        for (i, ins) in p.iter().enumerate().take(6 + 6).skip(6) {
            if ins.code == JMP_JNE_K || ins.code == JMP_JNE_X {
                assert_eq!(i as i16 + 1 + ins.off, 14, "insn {i}");
            }
        }
        assert_eq!(p[14], insn(ALU64_MOV_K, 0, 0, 0, 0));
        // Allow-by-default: deny blocks return 0, an overlap test (JEQ), default 1.
        let p = compile(&state(&[rule(true, "a", None, None, "rwm"), rule(false, "c", Some(1), None, "w")]));
        assert_eq!(p.len(), 6 + 7 + 2);
        assert!(p.iter().any(|i| i.code == JMP_JEQ_K));
        assert_eq!(p[11], insn(ALU64_MOV_K, 0, 0, 0, 0));
        assert_eq!(p[13], insn(ALU64_MOV_K, 0, 0, 0, 1));
    }

    /// Run a child in `dir` and return which of (O_RDONLY, O_WRONLY, O_RDWR) opens of
    /// /dev/null succeeded.
    fn opens_in(dir: &Path) -> [bool; 3] {
        let mut pipe = [0i32; 2];
        // SAFETY: a two-int array for pipe(2).
        assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
        // SAFETY: fork in a test; the child only makes raw syscalls and _exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let procs = std::ffi::CString::new(dir.join("cgroup.procs").to_str().unwrap()).unwrap();
            // SAFETY: plain syscalls on valid C strings and buffers in the forked child.
            unsafe {
                let f = libc::open(procs.as_ptr(), libc::O_WRONLY);
                libc::write(f, b"0".as_ptr().cast(), 1);
                libc::close(f);
                let mut res = [0u8; 3];
                for (i, flags) in [libc::O_RDONLY, libc::O_WRONLY, libc::O_RDWR].into_iter().enumerate() {
                    res[i] = (libc::open(c"/dev/null".as_ptr(), flags) >= 0) as u8;
                }
                libc::write(pipe[1], res.as_ptr().cast(), 3);
                libc::_exit(0);
            }
        }
        let mut res = [0u8; 3];
        // SAFETY: reading our pipe into a local buffer, then reaping our child.
        unsafe {
            libc::close(pipe[1]);
            libc::read(pipe[0], res.as_mut_ptr().cast(), 3);
            libc::close(pipe[0]);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        res.map(|b| b == 1)
    }

    /// A real kernel test where the host has a cgroup2 hierarchy we may create in:
    /// the verdicts for /dev/null (1:3) are those of the v1 kernel's rules.
    #[test]
    fn kernel_enforces_filter() {
        let mount = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"].into_iter().map(Path::new).find(|m| {
            m.join("cgroup.procs").exists()
                && std::fs::read_to_string("/proc/self/mountinfo")
                    .unwrap_or_default()
                    .contains(&format!(" {} ", m.display()))
        });
        // SAFETY: geteuid has no requirements.
        let (Some(mount), true) = (mount, unsafe { libc::geteuid() } == 0) else {
            eprintln!("skipping: no writable cgroup2 mount");
            return;
        };
        // A program the verifier refuses: the error carries the end of its log.
        let e = load(&[insn(ALU64_MOV_K, 0, 0, 0, 1)]).unwrap_err().to_string();
        assert!(e.contains("verifier: ") && !e.ends_with("verifier: )"), "{e}");
        let dir = mount.join(format!("capsa-bpftest-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        struct Rm<'a>(&'a Path);
        impl Drop for Rm<'_> {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir(self.0);
            }
        }
        let _rm = Rm(&dir);
        // Allow-by-default, deny w: a read-write open shares the w bit, so it is denied.
        let st = state(&[rule(true, "a", None, None, "rwm"), rule(false, "c", Some(1), Some(3), "w")]);
        apply(&dir, &st).unwrap();
        // Apply again: the old program is replaced, not stacked.
        apply(&dir, &st).unwrap();
        let cg = std::fs::File::open(&dir).unwrap();
        assert_eq!(attached(cg.as_raw_fd()).len(), 1);
        assert_eq!(opens_in(&dir), [true, false, false]);
        // Deny-by-default, allow r: only a read-only open.
        apply(&dir, &state(&[rule(false, "a", None, None, "rwm"), rule(true, "c", Some(1), Some(3), "r")])).unwrap();
        assert_eq!(opens_in(&dir), [true, false, false]);
        // ... and rw allows all three.
        apply(&dir, &state(&[rule(false, "a", None, None, "rwm"), rule(true, "c", Some(1), Some(3), "rw")])).unwrap();
        assert_eq!(opens_in(&dir), [true, true, true]);
        // Nothing allowed: nothing opens.
        apply(&dir, &state(&[])).unwrap();
        assert_eq!(opens_in(&dir), [false, false, false]);
    }
}

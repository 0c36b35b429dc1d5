/* The shield's task hooks (included by shield.bpf.c): nothing reaches into the service or a
 * certified process. Every
 * way into another process's memory, descriptors and namespaces (ptrace, /proc/PID/mem,
 * process_vm_readv/writev, /proc/PID/fd, root, cwd, ns/..., pidfd_getfd) asks
 * ptrace_access_check: refused when the service or a certified process is the target, to
 * every task but the service's own. A process is certified from the exec of a certified
 * program's file (bprm_check_security sees the script and then its interpreter, or the native
 * program; bprm_committed_creds marks the process once the exec is past its point of no return
 * and unmarks it when it executes anything else); what it forks without executing shares its
 * mark (same executable, a parent marked). A process already traced may not execute a certified
 * program at all: its tracer would hold it from its first instruction.
 * With the admin lock set, signals to the service are refused too (SIGTERM, SIGKILL, SIGSTOP
 * and every other sent by a task; the kernel's own, such as the OOM killer's, are not asked):
 * it stops only through `imageguard stop` with the passphrase. */
#ifndef IMAGEGUARD_TASKS_BPF_H
#define IMAGEGUARD_TASKS_BPF_H

static __always_inline void report_task(__u32 op, struct task_struct *target, int sig)
{
	struct shield_event *e = new_event(op, 0);
	if (!e)
		return;
	e->target = BPF_CORE_READ(target, tgid);
	e->signal = sig;
	e->depth = 1;
	e->complete = 1;
	bpf_probe_read_kernel_str(e->names[0], sizeof(e->names[0]), &target->comm);
	bpf_ringbuf_submit(e, 0);
}

SEC("lsm/ptrace_access_check")
int BPF_PROG(shield_ptrace_access_check, struct task_struct *child, unsigned int mode)
{
	__u32 op;
	if (task_is_service(child))
		op = SHIELD_OP_PTRACE;
	else if (task_certified(child))
		op = SHIELD_OP_PTRACE_CERTIFIED;
	else
		return 0;
	if (is_service())
		return 0;
	/* A probe the kernel makes without auditing (PTRACE_MODE_NOAUDIT: reading /proc/PID/stat,
	 * as ps, top and the service's own sentinel do, shows the task's stack and code addresses
	 * only if allowed): refused, and not worth an event. */
	if (mode & PTRACE_MODE_NOAUDIT)
		return -EPERM;
	/* Its environment, as ps reads every process's: refused, without an event. */
	__u64 id = bpf_get_current_pid_tgid();
	__u32 *environ_of = bpf_map_lookup_elem(&environ_open, &id);
	if (environ_of) {
		__u32 target = *environ_of;
		bpf_map_delete_elem(&environ_open, &id);
		if (target == (__u32)BPF_CORE_READ(child, pid))
			return -EPERM;
	}
	report_task(op, child, 0);
	return -EPERM;
}

/* An exec begins: nothing certified opened yet. */
SEC("lsm/bprm_creds_for_exec")
int BPF_PROG(shield_bprm_creds_for_exec, struct linux_binprm *bprm)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	bpf_map_delete_elem(&exec_pending, &tgid);
	return 0;
}

/* Each file the exec runs (a script, then its interpreter): a certified one marks the exec, and
 * is refused to a traced process. */
SEC("lsm/bprm_check_security")
int BPF_PROG(shield_bprm_check_security, struct linux_binprm *bprm)
{
	struct inode *inode = BPF_CORE_READ(bprm, file, f_inode);
	struct shield_inode key = {
		.dev = inode_dev(inode),
		.ino = BPF_CORE_READ(inode, i_ino),
	};
	if (!bpf_map_lookup_elem(&certified_exe, &key))
		return 0;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	if (BPF_CORE_READ(task, ptrace)) {
		struct shield_event *e = new_event(SHIELD_OP_EXEC_TRACED, key.dev);
		if (e) {
			e->ino = key.ino;
			e->depth = 1;
			e->complete = 0;
			bpf_probe_read_kernel_str(e->names[0], SHIELD_NAME_LEN,
						  BPF_CORE_READ(bprm, file, f_path.dentry, d_name.name));
			bpf_ringbuf_submit(e, 0);
		}
		return -EPERM;
	}
	__u32 tgid = BPF_CORE_READ(task, tgid);
	/* A script's entry is what its interpreter runs as: the first certified file wins. */
	bpf_map_update_elem(&exec_pending, &tgid, &key, BPF_NOEXIST);
	return 0;
}

/* The exec is past its point of no return: the process is certified if it opened a certified
 * program and starts as that program's certification allows (certify_exec), and no longer
 * certified otherwise. */
SEC("lsm/bprm_committed_creds")
int BPF_PROG(shield_bprm_committed_creds, struct linux_binprm *bprm)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 tgid = BPF_CORE_READ(task, tgid);
	struct shield_inode *pending = bpf_map_lookup_elem(&exec_pending, &tgid);
	if (pending) {
		struct shield_inode key = *pending;
		bpf_map_delete_elem(&exec_pending, &tgid);
		certify_exec(task, bprm, &key);
	} else {
		bpf_map_delete_elem(&certified_task, &tgid);
	}
	return 0;
}

SEC("lsm/task_kill")
int BPF_PROG(shield_task_kill, struct task_struct *p, void *info, int sig, const void *cred)
{
	if (sig == 0 || !task_is_service(p) || is_service())
		return 0;
	__u32 zero = 0;
	struct shield_service *s = bpf_map_lookup_elem(&service, &zero);
	if (!s || !s->admin_locked)
		return 0;
	report_task(SHIELD_OP_SIGNAL, p, sig);
	return -EPERM;
}

/* The service's group leader is freed (it ended and was reaped): no service lives. The file
 * hooks go on refusing every change (fail closed); the shield's own pins open for the next
 * service to take over. */
SEC("lsm/task_free")
int BPF_PROG(shield_task_free, struct task_struct *task)
{
	__u32 tgid = BPF_CORE_READ(task, tgid);
	/* A thread group's leader is gone: so is its mark. (Not a leader an exec from another
	 * thread replaced: its group_leader is that thread now, which carries the mark on.) */
	if ((__u32)BPF_CORE_READ(task, pid) == tgid && BPF_CORE_READ(task, group_leader) == task) {
		bpf_map_delete_elem(&certified_task, &tgid);
		bpf_map_delete_elem(&exec_pending, &tgid);
	}
	/* The recorded thread group's leader, whether or not its start matched: while it lived no
	 * other task had its number, so a mark that never matched (a wrong start) ends with it
	 * too instead of keeping the pins shut until the next boot. */
	__u32 zero = 0;
	struct shield_service *s = bpf_map_lookup_elem(&service, &zero);
	if (!s || !s->tgid || (__u32)BPF_CORE_READ(task, pid) != s->tgid ||
	    BPF_CORE_READ(task, group_leader) != task)
		return 0;
	s->tgid = 0;
	return 0;
}

#endif

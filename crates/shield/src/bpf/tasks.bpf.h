/* The shield's task hooks (included by shield.bpf.c): nothing reaches into the service. Every
 * way into another process's memory, descriptors and namespaces (ptrace, /proc/PID/mem,
 * process_vm_readv/writev, /proc/PID/fd, root, cwd, ns/..., pidfd_getfd) asks
 * ptrace_access_check: refused when the service is the target, to every task but its own.
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
	if (!task_is_service(child) || is_service())
		return 0;
	report_task(SHIELD_OP_PTRACE, child, 0);
	return -EPERM;
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
	__u32 zero = 0;
	struct shield_service *s = bpf_map_lookup_elem(&service, &zero);
	if (!s || !s->tgid || (__u32)BPF_CORE_READ(task, pid) != s->tgid || !task_is_service(task))
		return 0;
	s->tgid = 0;
	return 0;
}

#endif

/* The few kernel structures the shield reads, with only the fields it reads. Compiled once
 * (CO-RE): `preserve_access_index` has the loader relocate every field access to the running
 * kernel's layout (from its BTF), so no full vmlinux.h is needed and any kernel with BTF works. */
#ifndef IMAGEGUARD_KERNEL_H
#define IMAGEGUARD_KERNEL_H

#include <linux/types.h>
#include <linux/bpf.h>

typedef __u32 dev_t;
typedef unsigned int fmode_t;

#define FMODE_WRITE 0x2
/* The open created the file. */
#define FMODE_CREATED 0x100000
#define O_TRUNC 01000
#define O_APPEND 02000
#define PTRACE_MODE_NOAUDIT 0x04
#define EPERM 1

struct dentry;

struct super_block {
	dev_t s_dev;
	unsigned long s_magic;
	struct dentry *s_root;
} __attribute__((preserve_access_index));

#define PROC_SUPER_MAGIC 0x9fa0

struct inode {
	unsigned short i_mode;
	unsigned long i_ino;
	dev_t i_rdev;
	struct super_block *i_sb;
} __attribute__((preserve_access_index));

#define S_IFMT 00170000
#define S_IFBLK 0060000
#define S_IFCHR 0020000
#define S_IFREG 0100000

struct qstr {
	const unsigned char *name;
} __attribute__((preserve_access_index));

struct dentry {
	struct dentry *d_parent;
	struct qstr d_name;
	struct inode *d_inode;
	struct super_block *d_sb;
} __attribute__((preserve_access_index));

struct iattr {
	unsigned int ia_valid;
} __attribute__((preserve_access_index));

#define ATTR_SIZE (1 << 3)

struct vfsmount {
	struct dentry *mnt_root;
	struct super_block *mnt_sb;
} __attribute__((preserve_access_index));

struct path {
	struct vfsmount *mnt;
	struct dentry *dentry;
} __attribute__((preserve_access_index));

struct file {
	struct path f_path;
	struct inode *f_inode;
	fmode_t f_mode;
	unsigned int f_flags;
} __attribute__((preserve_access_index));

struct list_head {
	struct list_head *next;
} __attribute__((preserve_access_index));

/* The kernel's own record of a mount (fs/mount.h), of which struct vfsmount is a member. */
struct mount {
	struct dentry *mnt_mountpoint;
	struct vfsmount mnt;
	struct list_head mnt_mounts;
	struct list_head mnt_child;
} __attribute__((preserve_access_index));

struct ns_common {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct mnt_namespace {
	struct ns_common ns;
} __attribute__((preserve_access_index));

struct nsproxy {
	struct mnt_namespace *mnt_ns;
} __attribute__((preserve_access_index));

#define MS_REMOUNT 32
#define MS_MOVE 8192
#define MS_UNBINDABLE (1 << 17)
#define MS_PRIVATE (1 << 18)
#define MS_SLAVE (1 << 19)
#define MS_SHARED (1 << 20)

struct mm_struct {
	struct file *exe_file;
} __attribute__((preserve_access_index));

struct task_struct {
	unsigned int ptrace;
	int pid;
	int tgid;
	char comm[16];
	struct task_struct *real_parent;
	struct task_struct *group_leader;
	struct mm_struct *mm;
	struct nsproxy *nsproxy;
	__u64 start_boottime;
} __attribute__((preserve_access_index));

struct linux_binprm {
	struct file *file;
	/* Where the new program's start-up strings begin (argv, then envp), in the new memory
	 * (the task's own from bprm_committed_creds on), and how many there are. */
	unsigned long p;
	int argc;
	int envc;
} __attribute__((preserve_access_index));

#define PROT_EXEC 0x4
#define VM_EXEC 0x4

struct vm_area_struct {
	unsigned long vm_flags;
	struct file *vm_file;
} __attribute__((preserve_access_index));

#endif

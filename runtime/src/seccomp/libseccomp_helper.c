/* The differential seccomp test's reference: libseccomp builds the filter of a profile fed
 * on stdin the way runc feeds libseccomp-golang, and writes the BPF (seccomp_export_bpf) on
 * stdout. A rule libseccomp refuses is reported on stderr as "refused RULE ERRNO".
 *
 *   default ACTION          seccomp_init (ACTION: SCMP_ACT_* value, decimal)
 *   badarch ACTION          SCMP_FLTATR_ACT_BADARCH
 *   arch NAME               seccomp_arch_add (x86, x32, x86_64, arm, ...)
 *   rule ACTION NAME N [ARG OP A B]...   seccomp_rule_add_array (runc's AddRuleConditional)
 *
 * "pfc" as the argument writes libseccomp's readable form instead (for debugging);
 * "resolve ARCH NAME..." instead prints each name's number on ARCH (-1 if it has none).
 * Build: cc -o helper libseccomp_helper.c -lseccomp */
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned long long num(const char *s)
{
	if (!s) {
		fprintf(stderr, "truncated line\n");
		exit(2);
	}
	return strtoull(s, NULL, 0);
}

int main(int argc, char **argv)
{
	if (argc > 2 && !strcmp(argv[1], "resolve")) {
		uint32_t arch = seccomp_arch_resolve_name(argv[2]);
		for (int i = 3; i < argc; i++)
			printf("%d\n", arch ? seccomp_syscall_resolve_name_arch(arch, argv[i]) : -1);
		return 0;
	}
	char line[8192];
	scmp_filter_ctx ctx = NULL;
	int rule = 0;
	while (fgets(line, sizeof line, stdin)) {
		char *cmd = strtok(line, " \n");
		if (!cmd)
			continue;
		if (!strcmp(cmd, "default")) {
			ctx = seccomp_init((uint32_t)num(strtok(NULL, " \n")));
			if (!ctx) {
				fprintf(stderr, "seccomp_init failed\n");
				return 2;
			}
			continue;
		}
		if (!ctx) {
			fprintf(stderr, "no default line first\n");
			return 2;
		}
		if (!strcmp(cmd, "badarch")) {
			int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
						  (uint32_t)num(strtok(NULL, " \n")));
			if (rc) {
				fprintf(stderr, "badarch: %d\n", rc);
				return 2;
			}
		} else if (!strcmp(cmd, "arch")) {
			char *name = strtok(NULL, " \n");
			uint32_t arch = name ? seccomp_arch_resolve_name(name) : 0;
			int rc = arch ? seccomp_arch_add(ctx, arch) : -EINVAL;
			if (rc && rc != -EEXIST) {
				fprintf(stderr, "arch %s: %d\n", name ? name : "", rc);
				return 2;
			}
		} else if (!strcmp(cmd, "rule")) {
			uint32_t action = (uint32_t)num(strtok(NULL, " \n"));
			char *name = strtok(NULL, " \n");
			unsigned n = (unsigned)num(strtok(NULL, " \n"));
			struct scmp_arg_cmp cmp[6];
			if (n > 6) {
				fprintf(stderr, "too many comparisons\n");
				return 2;
			}
			for (unsigned i = 0; i < n; i++) {
				cmp[i].arg = (unsigned)num(strtok(NULL, " \n"));
				cmp[i].op = (enum scmp_compare)num(strtok(NULL, " \n"));
				cmp[i].datum_a = num(strtok(NULL, " \n"));
				cmp[i].datum_b = num(strtok(NULL, " \n"));
			}
			/* runc: GetSyscallFromName (native), unknown names are skipped. */
			int nr = seccomp_syscall_resolve_name(name ? name : "");
			if (nr != __NR_SCMP_ERROR) {
				int rc = seccomp_rule_add_array(ctx, action, nr, n, cmp);
				if (rc)
					fprintf(stderr, "refused %d %d\n", rule, -rc);
			}
			rule++;
		} else {
			fprintf(stderr, "unknown command %s\n", cmd);
			return 2;
		}
	}
	if (!ctx) {
		fprintf(stderr, "empty profile\n");
		return 2;
	}
	int pfc = argc > 1 && !strcmp(argv[1], "pfc");
	int rc = pfc ? seccomp_export_pfc(ctx, 1) : seccomp_export_bpf(ctx, 1);
	if (rc) {
		fprintf(stderr, "seccomp_export_bpf: %d\n", rc);
		return 2;
	}
	seccomp_release(ctx);
	return 0;
}

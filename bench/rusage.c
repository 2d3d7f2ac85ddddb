/*
 * rusage: run a command, then print on stderr's last line (or to the file
 * given with -o) its wall time, user + system CPU time in seconds with
 * microseconds, and peak RSS in KiB.  GNU time rounds to 10 ms, too
 * coarse for a 10 ms delivery.  A benchmark tool, not part of relay.
 *
 *	rusage -o FILE command [arg ...]
 */
#include <sys/resource.h>
#include <sys/wait.h>

#include <err.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int
main(int argc, char *argv[])
{
	struct timespec t0, t1;
	struct rusage ru;
	FILE *out;
	pid_t pid;
	int status;

	if (argc < 4 || strcmp(argv[1], "-o") != 0)
		errx(64, "usage: rusage -o file command [arg ...]");
	if ((out = fopen(argv[2], "w")) == NULL)
		err(73, "%s", argv[2]);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((pid = fork()) == -1)
		err(71, "fork");
	if (pid == 0) {
		execvp(argv[3], argv + 3);
		err(127, "%s", argv[3]);
	}
	if (wait4(pid, &status, 0, &ru) == -1)
		err(71, "wait4");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fprintf(out, "%.6f %.6f %ld\n", (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
	    (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6,
	    ru.ru_maxrss);
	fclose(out);
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

/*
 * Getting a secret from where the configuration says it is: a file that
 * others cannot open, an environment variable, or the first line printed
 * by a command run without a shell.  Only the AUTH password comes from
 * here yet, fetched by conf_secret() right before a connection needs
 * it, never while a message is being taken in: a source that fails
 * then costs no message.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"

#define BLANKS		" \t"	/* between the words of password_command */
#define SHOWN		128	/* room for a name quoted in an error */
/*
 * Hostile or broken input must not take all memory: a secret from anywhere
 * is capped, with room for OAuth tokens.
 */
#define SECRET_CAP	65536	/* octets of a password from any source */
#define COMMAND_TIMEOUT	30	/* seconds password_command may take */

/* An error into err, for the caller to say where; always -1. */
#define serr(err, errlen, ...)	errf(err, errlen, -1, __VA_ARGS__)

const char *
others_can(mode_t mode)
{
	if (mode & S_IROTH)
		return "readable";
	if (mode & S_IWOTH)
		return "writable";
	return "accessible";
}

/*
 * Open a file holding a secret (a password, a private key): a regular
 * file that others cannot open, owned by root or the real uid (anyone
 * else could swap the secret); group access is the administrator's
 * choice, as for the configuration file.  Checked on the descriptor
 * (fstat), so that what is read is what was checked.  O_NONBLOCK: a
 * FIFO put there by mistake must not hang relay.  Returns the
 * descriptor, or -1 with err set.
 */
int
secret_file_open(const char *keyword, const char *file, char *err,
    size_t errlen)
{
	char name[SHOWN];
	struct stat st;
	int fd, saved;

	sanitise(name, sizeof(name), file, strlen(file));
	if ((fd = open(file, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) == -1)
		return serr(err, errlen, "%s %s: %s", keyword, name,
		    strerror(errno));
	if (fstat(fd, &st) == -1) {
		saved = errno;
		(void)close(fd);
		return serr(err, errlen, "%s %s: %s", keyword, name,
		    strerror(saved));
	}
	if (!S_ISREG(st.st_mode)) {
		(void)close(fd);
		return serr(err, errlen, "%s %s: not a regular file", keyword,
		    name);
	}
	if (st.st_uid != 0 && st.st_uid != getuid()) {
		(void)close(fd);
		return serr(err, errlen, "%s %s is owned by uid %lu, neither "
		    "root nor uid %lu: chown it", keyword, name,
		    (unsigned long)st.st_uid, (unsigned long)getuid());
	}
	if (st.st_mode & S_IRWXO) {
		(void)close(fd);
		return serr(err, errlen, "%s %s is %s by others (mode %04o): "
		    "chmod o-rwx %s", keyword, name, others_can(st.st_mode),
		    (unsigned int)(st.st_mode & 07777), name);
	}
	return fd;
}

enum line_status { LINE_OK, LINE_EMPTY, LINE_NUL, LINE_LONG };

/*
 * The secret in buf[0..len): its first line without the CRs and LFs that
 * end it.  More than SECRET_CAP + 1 octets without a LF (the caller reads
 * SECRET_CAP + 2) is a line too long, whatever follows.
 */
static enum line_status
secret_line(const char *buf, size_t len, size_t *linelen)
{
	const char *nl;
	size_t n;

	if ((nl = memchr(buf, '\n', len)) != NULL)
		n = (size_t)(nl - buf);
	else if (len > SECRET_CAP + 1)
		return LINE_LONG;
	else
		n = len;
	while (n > 0 && (buf[n - 1] == '\r' || buf[n - 1] == '\n'))
		n--;
	*linelen = n;
	if (n == 0)
		return LINE_EMPTY;
	if (n > SECRET_CAP)
		return LINE_LONG;
	if (memchr(buf, '\0', n) != NULL)
		return LINE_NUL;
	return LINE_OK;
}

/* A copy of buf[0..len) as a string, for a secret. */
static char *
secret_dup(const char *buf, size_t len)
{
	char *s;

	if ((s = malloc(len + 1)) == NULL)
		return NULL;
	memcpy(s, buf, len);
	s[len] = '\0';
	return s;
}

/* Read up to size octets: a short count means the end of the file. */
static ssize_t
read_full(int fd, char *buf, size_t size)
{
	size_t got = 0;
	ssize_t n;

	while (got < size) {
		if ((n = read(fd, buf + got, size - got)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* The secret of keyword (password_file) from the first line of file. */
int
secret_file_read(const char *keyword, const char *file, char **secret,
    char *err, size_t errlen)
{
	static const char *const why[] = {
		[LINE_EMPTY] = "first line is empty",
		[LINE_NUL] = "contains a NUL byte",
		[LINE_LONG] = "first line is longer than 65536 octets",
	};
	char name[SHOWN], *buf;
	size_t size = SECRET_CAP + 2, linelen = 0;
	enum line_status st;
	ssize_t n;
	int fd, saved, rv = -1;

	sanitise(name, sizeof(name), file, strlen(file));
	if ((fd = secret_file_open(keyword, file, err, errlen)) == -1)
		return -1;
	if ((buf = malloc(size)) == NULL) {
		saved = errno;
		(void)close(fd);
		return serr(err, errlen, "%s", strerror(saved));
	}
	if ((n = read_full(fd, buf, size)) == -1)
		(void)serr(err, errlen, "%s %s: %s", keyword, name,
		    strerror(errno));
	else if ((st = secret_line(buf, (size_t)n, &linelen)) != LINE_OK)
		(void)serr(err, errlen, "%s %s: %s", keyword, name, why[st]);
	else if ((*secret = secret_dup(buf, linelen)) == NULL)
		(void)serr(err, errlen, "%s", strerror(errno));
	else
		rv = 0;
	(void)close(fd);
	freezero(buf, size);
	return rv;
}

/*
 * password_env: the variable is read once and removed, its value wiped
 * where it lay (/proc/PID/environ shows that memory), so that neither
 * a child nor a look at the process finds it afterwards.
 */
static int
secret_env(struct conf *c, char *err, size_t errlen)
{
	const char *name = c->password_env;
	size_t len;
	char *value;

	/* The caller chose the environment: it must not pick our secret. */
	if (privileged())
		return serr(err, errlen, "password_env cannot be used by a "
		    "setgid relay: the environment belongs to the caller; use "
		    "password_file or password_command");
	if ((value = getenv(name)) == NULL)
		return serr(err, errlen, "password_env %s: the variable is "
		    "not set", name);
	switch (secret_line(value, strlen(value), &len)) {
	case LINE_OK:
		break;
	case LINE_LONG:
		return serr(err, errlen, "password_env %s: the value is "
		    "longer than %d octets", name, SECRET_CAP);
	default:
		return serr(err, errlen, "password_env %s: the variable is "
		    "empty", name);
	}
	if ((c->password = secret_dup(value, len)) == NULL)
		return serr(err, errlen, "%s", strerror(errno));
	explicit_bzero(value, strlen(value));
	if (unsetenv(name) == -1)
		return serr(err, errlen, "password_env %s: %s", name,
		    strerror(errno));
	return 0;
}

/* Everything the child needs, made before fork(). */
struct command {
	char	 *words;	/* password_command, split in place */
	char	**argv;
	char	 *envp[5];	/* PATH, HOME, LOGNAME, USER, NULL */
	char	  prog[SHOWN];	/* argv[0], safe to print */
	int	  timeout;	/* seconds */
};

static void
command_free(struct command *cmd)
{
	size_t i;

	free(cmd->words);
	free(cmd->argv);
	for (i = 0; i < sizeof(cmd->envp) / sizeof(cmd->envp[0]); i++)
		free(cmd->envp[i]);
}

/* "NAME=value" into the next free slot of cmd->envp. */
static int
command_env(struct command *cmd, const char *name, const char *value)
{
	size_t i = 0, len;

	while (cmd->envp[i] != NULL)
		i++;
	len = strlen(name) + 1 + strlen(value) + 1;
	if ((cmd->envp[i] = malloc(len)) == NULL)
		return -1;
	(void)snprintf(cmd->envp[i], len, "%s=%s", name, value);
	return 0;
}

/*
 * Split at blanks, no shell, no quoting.  A fixed, small environment: the
 * caller's (LD_PRELOAD, PATH, IFS...) must not steer the program, and a
 * setgid relay would otherwise hand it over with the group's rights.
 */
static int
command_prepare(const struct conf *c, struct command *cmd)
{
	const struct passwd *pw;
	struct timespec now;
	char *rest, *word;
	size_t n = 0;
	long long left;

	memset(cmd, 0, sizeof(*cmd));
	if ((cmd->words = strdup(c->password_command)) == NULL)
		return -1;
	if ((cmd->argv = reallocarray(NULL, strlen(cmd->words) / 2 + 2,
	    sizeof(*cmd->argv))) == NULL)
		return -1;
	for (rest = cmd->words; (word = strsep(&rest, BLANKS)) != NULL; )
		if (*word != '\0')
			cmd->argv[n++] = word;
	cmd->argv[n] = NULL;
	sanitise(cmd->prog, sizeof(cmd->prog), cmd->argv[0],
	    strlen(cmd->argv[0]));
	if (command_env(cmd, "PATH", "/usr/bin:/bin") == -1)
		return -1;
	if ((pw = getpwuid(getuid())) != NULL &&
	    (command_env(cmd, "HOME", pw->pw_dir) == -1 ||
	    command_env(cmd, "LOGNAME", pw->pw_name) == -1 ||
	    command_env(cmd, "USER", pw->pw_name) == -1))
		return -1;
	/* timeout_command, when shorter, bounds it too (and the tests). */
	cmd->timeout = COMMAND_TIMEOUT;
	if (c->timeout[TMO_COMMAND] > 0 &&
	    c->timeout[TMO_COMMAND] < cmd->timeout)
		cmd->timeout = c->timeout[TMO_COMMAND];
	/* And a submission's total deadline (submit_timeout). */
	if (c->submit_end.tv_sec != 0 &&
	    clock_gettime(CLOCK_MONOTONIC, &now) == 0) {
		left = (long long)(c->submit_end.tv_sec - now.tv_sec);
		left = left < 1 ? 1 : left;
		if (left < cmd->timeout)
			cmd->timeout = (int)left;
	}
	return 0;
}

/*
 * After fork(): only async-signal-safe calls.  Standard input /dev/null,
 * standard output the pipe, standard error relay's; fd 3 reports a failed
 * execve() (it closes on success); nothing else stays open.
 */
static void
command_child(const struct command *cmd, int outfd, int errfd)
{
	static const int sigs[] = {
		SIGPIPE, SIGCHLD, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGALRM,
		SIGUSR1, SIGUSR2, SIGXFSZ
	};
	sigset_t none;
	size_t i;
	ssize_t n;
	int fd, saved, report = errfd;

	/*
	 * A group of its own: at the deadline the whole group is killed,
	 * so a grandchild holding our caller's stderr cannot outlive it.
	 */
	(void)setpgid(0, 0);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		(void)signal(sigs[i], SIG_DFL);
	(void)sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	if ((fd = open("/dev/null", O_RDONLY)) == -1 ||
	    dup2(fd, STDIN_FILENO) == -1 || dup2(outfd, STDOUT_FILENO) == -1 ||
	    dup2(errfd, 3) == -1)
		goto fail;
	report = 3;
	if (fcntl(3, F_SETFD, FD_CLOEXEC) == -1 || chdir("/") == -1)
		goto fail;
	closefrom(4);
	(void)execve(cmd->argv[0], cmd->argv, cmd->envp);
fail:
	saved = errno;
	n = write(report, &saved, sizeof(saved));
	_exit(n == -1 ? 126 : 127);
}

/* Milliseconds left until the deadline, 0 when it has passed. */
static int
ms_left(const struct timespec *deadline)
{
	struct timespec now;
	long long ms;

	if (clock_gettime(CLOCK_MONOTONIC, &now) == -1)
		return 0;
	ms = (long long)(deadline->tv_sec - now.tv_sec) * 1000 +
	    (deadline->tv_nsec - now.tv_nsec) / 1000000;
	return ms <= 0 ? 0 : ms > INT_MAX ? INT_MAX : (int)ms;
}

/*
 * The child's standard output until it closes or the deadline: the first
 * size octets into buf, the rest read and dropped.  Returns the octets
 * kept, -1 on error, -2 at the deadline.
 */
static ssize_t
command_output(int fd, char *buf, size_t size,
    const struct timespec *deadline)
{
	struct pollfd pfd = { fd, POLLIN, 0 };
	char drop[512];
	size_t got = 0;
	ssize_t n;
	int left, rv;

	for (;;) {
		if ((left = ms_left(deadline)) == 0)
			return -2;
		if ((rv = poll(&pfd, 1, left)) == -1 && errno != EINTR)
			return -1;
		if (rv <= 0)
			continue;
		if (got < size)
			n = read(fd, buf + got, size - got);
		else
			n = read(fd, drop, sizeof(drop));
		if (n == -1 && errno != EINTR && errno != EAGAIN)
			return -1;
		if (n == 0)
			return (ssize_t)got;
		if (n > 0 && got < size)
			got += (size_t)n;
	}
}

/*
 * Kill the command and whatever it started (its process group).  Called
 * before it is reaped, so that its pid, the group's id, is not reused.
 */
static void
command_kill(pid_t pid)
{
	if (kill(-pid, SIGKILL) == -1)
		(void)kill(pid, SIGKILL);
}

/*
 * Reap the child, killing it at the deadline.  Returns 0, -1 on error
 * (errno set), -2 when it had to be killed.
 */
static int
command_wait(pid_t pid, int *status, const struct timespec *deadline)
{
	const struct timespec tick = { 0, 10 * 1000 * 1000 };
	pid_t rv;

	for (;;) {
		if ((rv = waitpid(pid, status, WNOHANG)) == pid)
			return 0;
		if (rv == -1 && errno != EINTR)
			return -1;
		if (rv == 0 && ms_left(deadline) == 0)
			break;
		(void)nanosleep(&tick, NULL);
	}
	command_kill(pid);
	while ((rv = waitpid(pid, status, 0)) == -1 && errno == EINTR)
		;
	return rv == pid ? -2 : -1;
}

/*
 * At the deadline with its output still open: kill the group (the
 * command, or a grandchild it left holding the pipe) and reap.  Returns
 * -2 when the command itself was still running, 0 when it had exited,
 * -1 on error.
 */
static int
command_stop(pid_t pid, int *status)
{
	pid_t rv;
	int running;

	while ((rv = waitpid(pid, status, WNOHANG)) == -1 && errno == EINTR)
		;
	running = rv == 0;
	command_kill(pid);
	while (running && (rv = waitpid(pid, status, 0)) == -1 &&
	    errno == EINTR)
		;
	return rv != pid ? -1 : running ? -2 : 0;
}

/* The secret from what the command printed, or why there is none. */
static int
command_result(struct conf *c, const struct command *cmd, char *buf,
    ssize_t got, int status, char *err, size_t errlen)
{
	size_t len;

	if (WIFSIGNALED(status))
		return serr(err, errlen, "password_command %s was killed "
		    "by signal %d", cmd->prog, WTERMSIG(status));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return serr(err, errlen, "password_command %s exited with "
		    "status %d", cmd->prog, WEXITSTATUS(status));
	if (got == 0)
		return serr(err, errlen, "password_command %s printed "
		    "nothing", cmd->prog);
	switch (secret_line(buf, (size_t)got, &len)) {
	case LINE_OK:
		break;
	case LINE_EMPTY:
		return serr(err, errlen, "password_command %s printed an "
		    "empty first line", cmd->prog);
	case LINE_NUL:
		return serr(err, errlen, "password_command %s printed a "
		    "NUL byte", cmd->prog);
	case LINE_LONG:
		return serr(err, errlen, "password_command %s printed a "
		    "first line longer than %d octets", cmd->prog,
		    SECRET_CAP);
	}
	if ((c->password = secret_dup(buf, len)) == NULL)
		return serr(err, errlen, "%s", strerror(errno));
	return 0;
}

/*
 * password_command: run the program, its first line of output is the
 * secret.  It never passes through an argument or the environment.
 */
static int
secret_command(struct conf *c, char *err, size_t errlen)
{
	struct command cmd;
	struct sigaction dfl, old;
	struct timespec deadline;
	size_t size = SECRET_CAP + 2;
	char *buf = NULL;
	int out[2] = { -1, -1 }, ex[2] = { -1, -1 }, status = 0, rv = -1;
	int execerr = 0, saved;
	ssize_t got = -1, n;
	pid_t pid = -1;

	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	(void)sigemptyset(&dfl.sa_mask);
	/* An inherited SIGCHLD SIG_IGN would reap the child behind our back. */
	if (sigaction(SIGCHLD, &dfl, &old) == -1)
		return serr(err, errlen, "sigaction: %s", strerror(errno));
	if (command_prepare(c, &cmd) == -1 || (buf = malloc(size)) == NULL ||
	    pipe(out) == -1 || pipe(ex) == -1 ||
	    fcntl(out[0], F_SETFD, FD_CLOEXEC) == -1 ||
	    fcntl(out[1], F_SETFD, FD_CLOEXEC) == -1 ||
	    fcntl(ex[0], F_SETFD, FD_CLOEXEC) == -1 ||
	    fcntl(ex[1], F_SETFD, FD_CLOEXEC) == -1 ||
	    clock_gettime(CLOCK_MONOTONIC, &deadline) == -1 ||
	    (pid = fork()) == -1) {
		(void)serr(err, errlen, "password_command %s: %s",
		    cmd.prog, strerror(errno));
		goto done;
	}
	if (pid == 0)
		command_child(&cmd, out[1], ex[1]);
	(void)setpgid(pid, pid);	/* as the child does: no race */
	(void)close(out[1]);
	(void)close(ex[1]);
	out[1] = ex[1] = -1;
	deadline.tv_sec += cmd.timeout;
	/* The write end closes at execve(), or brings its errno. */
	while ((n = read(ex[0], &execerr, sizeof(execerr))) == -1 &&
	    errno == EINTR)
		;
	if (n == (ssize_t)sizeof(execerr)) {
		(void)command_wait(pid, &status, &deadline);
		(void)serr(err, errlen, "password_command %s: cannot run "
		    "it: %s", cmd.prog, strerror(execerr));
		goto done;
	}
	if ((got = command_output(out[0], buf, size, &deadline)) == -1) {
		saved = errno;
		(void)command_wait(pid, &status, &deadline);
		(void)serr(err, errlen, "password_command %s: reading its "
		    "output: %s", cmd.prog, strerror(saved));
		goto done;
	}
	switch (got == -2 ? command_stop(pid, &status) :
	    command_wait(pid, &status, &deadline)) {
	case -1:
		(void)serr(err, errlen, "password_command %s: waitpid: %s",
		    cmd.prog, strerror(errno));
		break;
	case -2:
		(void)serr(err, errlen, "password_command %s did not finish "
		    "in %ds and was killed", cmd.prog, cmd.timeout);
		break;
	default:
		if (got == -2)
			(void)serr(err, errlen, "password_command %s did not "
			    "close its output in %ds", cmd.prog, cmd.timeout);
		else
			rv = command_result(c, &cmd, buf, got, status, err,
			    errlen);
		break;
	}
done:
	if (out[0] != -1)
		(void)close(out[0]);
	if (out[1] != -1)
		(void)close(out[1]);
	if (ex[0] != -1)
		(void)close(ex[0]);
	if (ex[1] != -1)
		(void)close(ex[1]);
	if (buf != NULL)
		freezero(buf, size);
	command_free(&cmd);
	(void)sigaction(SIGCHLD, &old, NULL);
	return rv;
}

/*
 * The errors above say what went wrong; the configuration file that asked
 * for the secret is named here.
 */
int
conf_secret(struct conf *c, char *err, size_t errlen)
{
	char path[256], why[ERRLEN] = "";
	int rv = 0;

	/* Inline, or fetched already. */
	if (c->user == NULL || c->password != NULL)
		return 0;
	if (c->password_file != NULL)
		rv = secret_file_read("password_file", c->password_file,
		    &c->password, why, sizeof(why));
	else if (c->password_env != NULL)
		rv = secret_env(c, why, sizeof(why));
	else if (c->password_command != NULL)
		rv = secret_command(c, why, sizeof(why));
	if (rv == -1) {
		sanitise(path, sizeof(path), c->path, strlen(c->path));
		if (c->password_file != NULL)
			(void)snprintf(err, errlen, "%s:%zu: %s", path,
			    c->password_line, why);
		else
			(void)snprintf(err, errlen, "%s: %s", path, why);
	}
	return rv;
}

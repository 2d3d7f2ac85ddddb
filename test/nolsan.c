/*
 * Linked into test/obj/relay-setgid: LeakSanitizer cannot run in a
 * setgid process (it needs ptrace), so the setgid tests run without it.
 */
const char *__lsan_default_options(void);

const char *
__lsan_default_options(void)
{
	return "detect_leaks=0";
}

To: "A B" <a@example.org>, Group: c@d.example, (x) e@f.example;
Cc: root
Bcc: x@y.example

body
morex

# make install / uninstall. Build first (`make build`, as a normal user); install copies, it does not compile.
# PREFIX=/usr/local puts the units in /etc/systemd/system (systemd does not read /usr/local/lib/systemd);
# PREFIX=/usr puts them in /usr/lib/systemd/system. DESTDIR stages everything under another root.
PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  := $(DESTDIR)$(PREFIX)/bin
SHAREDIR := $(DESTDIR)$(PREFIX)/share/uvchat
MANDIR  := $(DESTDIR)$(PREFIX)/share/man/man8
UNITDIR ?= $(DESTDIR)$(if $(filter /usr,$(PREFIX)),/usr/lib/systemd/system,/etc/systemd/system)

.PHONY: install uninstall

install:
	@test -x $(RELEASE) || { echo "no $(RELEASE): run 'make build' first"; exit 1; }
	install -d $(BINDIR) $(SHAREDIR)/www $(MANDIR) $(UNITDIR)
	install -m 0755 $(RELEASE) $(BINDIR)/uvchatd
	cd www && find . -type d -exec install -d "$(SHAREDIR)/www/{}" \; && find . -type f -exec install -m 0644 "{}" "$(SHAREDIR)/www/{}" \;
	install -m 0644 deploy/uvchatd.8 $(MANDIR)/uvchatd.8
	sed -e 's|/usr/local/bin/uvchatd|$(PREFIX)/bin/uvchatd|' -e 's|/usr/local/share/uvchat/www|$(PREFIX)/share/uvchat/www|' \
	    deploy/systemd/uvchat.service > $(UNITDIR)/uvchat.service
	chmod 0644 $(UNITDIR)/uvchat.service
	install -m 0644 deploy/systemd/uvchat.socket $(UNITDIR)/uvchat.socket
	@echo "installed; as root: systemctl daemon-reload && systemctl enable --now uvchat.socket"

uninstall:
	rm -f $(BINDIR)/uvchatd $(MANDIR)/uvchatd.8 $(UNITDIR)/uvchat.service $(UNITDIR)/uvchat.socket
	rm -rf $(SHAREDIR)

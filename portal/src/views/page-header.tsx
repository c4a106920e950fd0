import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';
import { path } from '../router';

/**
 * A page's title and its main actions. The title takes the focus when the page changes, so that
 * keyboard and screen reader users start at the top of the new page.
 */
export function PageHeader({
  title,
  subtitle,
  actions,
  crumbs,
}: {
  title: ComponentChildren;
  subtitle?: ComponentChildren;
  actions?: ComponentChildren;
  crumbs?: ComponentChildren;
}) {
  const heading = useRef<HTMLHeadingElement>(null);
  const where = path.value;
  useEffect(() => {
    heading.current?.focus({ preventScroll: true });
  }, [where]);
  return (
    <header class="page-header">
      {crumbs && (
        <nav class="crumbs" aria-label="Breadcrumb">
          {crumbs}
        </nav>
      )}
      <div class="page-header-row">
        <div class="page-title">
          <h1 ref={heading} tabIndex={-1}>
            {title}
          </h1>
          {subtitle && <div class="subtitle">{subtitle}</div>}
        </div>
        {actions && <div class="actions">{actions}</div>}
      </div>
    </header>
  );
}

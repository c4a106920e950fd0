/** Says once, at the top of the run, whether the PostgreSQL contract run is on. */
export default function setup(): void {
  if (process.env.TEST_DATABASE_URL) {
    console.log(`PostgreSQL contract run: on (TEST_DATABASE_URL=${process.env.TEST_DATABASE_URL})`);
  } else {
    console.log('PostgreSQL contract run: SKIPPED, because TEST_DATABASE_URL is not set (.ci/run sets it).');
  }
}

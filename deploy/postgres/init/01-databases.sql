-- One database and one owner per service: no service reads another's tables.
CREATE ROLE membership LOGIN PASSWORD 'membership';
CREATE ROLE evaluation LOGIN PASSWORD 'evaluation';
CREATE ROLE feedback LOGIN PASSWORD 'feedback';
CREATE DATABASE membership OWNER membership;
CREATE DATABASE evaluation OWNER evaluation;
CREATE DATABASE feedback OWNER feedback;

(function_declaration name: (identifier) @name) @definition.function
(generator_function_declaration name: (identifier) @name) @definition.function
(class_declaration name: (type_identifier) @name) @definition.class
(abstract_class_declaration name: (type_identifier) @name) @definition.class
(interface_declaration name: (type_identifier) @name) @definition.interface
(type_alias_declaration name: (type_identifier) @name) @definition.type
(enum_declaration name: (identifier) @name) @definition.type
(internal_module name: (_) @name) @definition.module
(method_definition name: (_) @name) @definition.method
(lexical_declaration
  (variable_declarator
    name: (identifier) @name
    value: [(arrow_function) (function_expression)])) @definition.function
(variable_declaration
  (variable_declarator
    name: (identifier) @name
    value: [(arrow_function) (function_expression)])) @definition.function
(expression_statement
  (assignment_expression
    left: (member_expression) @name
    right: [(arrow_function) (function_expression)])) @definition.function
(public_field_definition
  name: (property_identifier) @name
  value: [(arrow_function) (function_expression)]) @definition.method
(expression_statement
  (assignment_expression
    left: (member_expression) @name
    right: (assignment_expression
      right: [(arrow_function)
              (function_expression)
              (assignment_expression right: [(arrow_function) (function_expression)])]))) @definition.function
(expression_statement
  (call_expression
    arguments: (arguments (function_expression name: (identifier) @name)))) @definition.function
(expression_statement
  (call_expression
    arguments: (arguments
      [(string) (template_string)] @name
      .
      [(arrow_function) (function_expression)]))) @definition.function
